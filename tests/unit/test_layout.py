"""The app's directories on a host, as data: what one `stat` of them says decides what is
created, chmodded and chowned, and a host set up before needs nothing more."""

from __future__ import annotations

from goship.deploy.layout import Paths, layout_dirs, layout_fixes

P = Paths("/srv", "shop")
RIGHT = """\
755 root:root /srv/shop
755 root:root /srv/shop/releases
700 root:root /srv/shop/incoming
755 root:root /srv/shop/logs
700 root:root /srv/shop/run
750 shop:shop /srv/shop/shared
755 shop:shop /srv/shop/shared/data
700 root:root /srv/shop/shared/envs
"""


def test_a_host_set_up_before_needs_nothing() -> None:
    assert layout_fixes(P, "shop", RIGHT) == []


def test_a_new_host_gets_every_directory_with_its_mode_and_owner() -> None:
    assert layout_fixes(P, "shop", "") == [
        ["mkdir", "-p", *layout_dirs(P, "shop")],
        ["chown", "shop:shop", "/srv/shop/shared", "/srv/shop/shared/data"],
        ["chmod", "755", "/srv/shop", "/srv/shop/releases"],
        ["chmod", "700", "/srv/shop/incoming", "/srv/shop/run", "/srv/shop/shared/envs"],
        ["chmod", "750", "/srv/shop/shared"],
    ]


def test_what_drifted_is_put_back_and_nothing_else() -> None:
    seen = (RIGHT.replace("700 root:root /srv/shop/shared/envs",
                          "755 root:root /srv/shop/shared/envs")
            .replace("750 shop:shop /srv/shop/shared\n", "750 root:shop /srv/shop/shared\n")
            .replace("755 root:root /srv/shop/logs\n", ""))
    assert layout_fixes(P, "shop", seen) == [
        ["mkdir", "-p", "/srv/shop/logs"],
        ["chown", "shop:shop", "/srv/shop/shared"],
        ["chmod", "700", "/srv/shop/shared/envs"],
    ]


def test_a_setgid_directory_is_not_chmodded_again_and_again() -> None:
    seen = RIGHT.replace("755 root:root /srv/shop/releases", "2755 root:root /srv/shop/releases")
    assert layout_fixes(P, "shop", seen) == []


def test_local_mode_chowns_nothing() -> None:
    seen = RIGHT.replace("shop:shop", "me:me").replace("750 me:me /srv/shop/shared\n",
                                                       "755 me:me /srv/shop/shared\n")
    assert layout_fixes(P, None, seen) == []
    assert ["chown"] not in [argv[:1] for argv in layout_fixes(P, None, "")]
