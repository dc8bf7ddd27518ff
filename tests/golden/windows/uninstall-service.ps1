# hello-gin: stop and remove the Windows service "hello-gin" (nssm). Run as Administrator.
# The files under C:\goship\hello-gin are kept.
$ErrorActionPreference = "Stop"
$Service = 'hello-gin'
nssm stop $Service
nssm remove $Service confirm
