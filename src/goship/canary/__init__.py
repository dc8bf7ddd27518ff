"""Gray release: route by header, cookie, allowlist and weight; analyse; promote or abort."""
