"""`goship init` on projects laid out the ways Go teams lay them out."""

from __future__ import annotations

import textwrap
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from goship import goproject
from goship.config import parse
from tests.conftest import EXAMPLE, CliResult

Run = Callable[..., CliResult]


def project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


GIN_MOD = """
    module {module}

    go 1.22

    require github.com/gin-gonic/gin v1.10.0
"""


@pytest.fixture
def layered(tmp_path: Path) -> Path:
    """cmd/<name> mains, code in internal/, web/ assets, APP_PORT, buildinfo package."""
    return project(tmp_path / "shop", {
        "go.mod": GIN_MOD.format(module="github.com/acme/shop/v2"),
        "cmd/api/main.go": """
            package main

            import (
                "context"
                "os/signal"
                "syscall"

                "github.com/acme/shop/v2/internal/buildinfo"
                "github.com/acme/shop/v2/internal/server"
            )

            func main() {
                println(buildinfo.Version)
                ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
                defer stop()
                server.Run(ctx)
            }
        """,
        "cmd/migrate/main.go": "package main\n\nfunc main() {}\n",
        "internal/server/server.go": """
            package server

            import (
                "context"
                "net/http"
                "os"

                "github.com/gin-gonic/gin"
            )

            func Run(ctx context.Context) {
                r := gin.New()
                r.LoadHTMLGlob("web/templates/**/*")
                r.Static("/assets", "./web/static")
                // r.GET("/health", nil)  -- commented out, must not count
                api := r.Group("/api")
                v1 := api.Group("/v1")
                v1.GET("/healthz", func(c *gin.Context) { c.Status(200) })
                v1.GET("/users/:id", nil)
                port, ok := os.LookupEnv("APP_PORT")
                if !ok {
                    port = "9000"
                }
                srv := &http.Server{Addr: ":" + port, Handler: r}
                go srv.ListenAndServe()
                <-ctx.Done()
                srv.Shutdown(context.Background())
            }
        """,
        "internal/buildinfo/buildinfo.go": """
            package buildinfo

            var (
                Version   = "dev"
                Commit    string
                BuildTime = "unknown"
                notStamped = 3
            )

            const Date = "never"  // a constant: -X cannot set it
        """,
        "web/templates/users/list.tmpl": "<ul></ul>\n",
        "web/static/app.css": "body{}\n",
    })


def test_example_service(tmp_path: Path) -> None:
    ins = goproject.inspect(EXAMPLE)
    assert ins.gomod.module == "example.com/hello-gin"
    assert ins.mains == ["."]
    assert ins.gin
    assert ins.health == "/health"
    assert ins.port is not None
    assert (ins.port.name, ins.port.default) == ("PORT", 8080)
    assert ins.assets == ["templates", "static"]
    assert [s.flag for s in ins.stamps] == ["main.version", "main.commit", "main.buildTime"]
    assert ins.graceful


def test_layered_project(layered: Path) -> None:
    ins = goproject.inspect(layered)
    assert ins.mains == ["cmd/api", "cmd/migrate"]
    assert ins.main == "cmd/api"
    assert ins.gin
    assert ins.health == "/api/v1/healthz"
    assert ins.port is not None
    assert (ins.port.name, ins.port.default) == ("APP_PORT", 9000)
    assert ins.assets == ["web/templates", "web/static"]  # what the code reads, no more
    assert [s.flag for s in ins.stamps] == [
        "github.com/acme/shop/v2/internal/buildinfo.Version",
        "github.com/acme/shop/v2/internal/buildinfo.Commit",
        "github.com/acme/shop/v2/internal/buildinfo.BuildTime",
    ]
    assert ins.graceful


def test_layered_init_writes_a_valid_config(run_cli: Run, layered: Path) -> None:
    r = run_cli("init", str(layered))
    assert r.code == 0, r.err
    assert "several main packages (cmd/api, cmd/migrate); chose cmd/api" in r.err
    text = (layered / "goship.toml").read_text()
    cfg = parse(tomllib.loads(text)).base
    assert cfg.app.name == "shop"  # the /v2 suffix is not a name
    assert cfg.app.main == "cmd/api"
    assert cfg.run.port_env == "APP_PORT"
    assert cfg.run.base_port == 9000
    assert cfg.run.health.path == "/api/v1/healthz"
    assert cfg.build.assets == ["web/templates", "web/static"]
    assert cfg.app.stamp == {
        "github.com/acme/shop/v2/internal/buildinfo.Version": "{version}",
        "github.com/acme/shop/v2/internal/buildinfo.Commit": "{commit}",
        "github.com/acme/shop/v2/internal/buildinfo.BuildTime": "{build_time}",
    }
    assert cfg.run.env == {"GIN_MODE": "release"}
    assert "others found: cmd/migrate" in text
    assert "WARNING" not in text


def test_main_can_be_chosen(run_cli: Run, layered: Path) -> None:
    r = run_cli("init", str(layered), "--main", "./cmd/migrate", "--stdout")
    assert r.code == 0, r.err
    assert 'main = "cmd/migrate"' in r.out
    bad = run_cli("init", str(layered), "--main", "cmd/nope")
    assert bad.code == 2
    assert "--main cmd/nope: not a main package here; choose one of: cmd/api, cmd/migrate" \
        in bad.err


def test_embedded_assets_and_no_graceful_shutdown(run_cli: Run, tmp_path: Path) -> None:
    root = project(tmp_path / "embedded", {
        "go.mod": GIN_MOD.format(module="example.org/tools/pinger"),
        "main.go": """
            package main

            import (
                "embed"
                "io/fs"
                "net/http"
                "os"

                "github.com/gin-gonic/gin"
            )

            //go:embed assets/*
            var assets embed.FS

            var version string

            func main() {
                r := gin.Default()
                sub, _ := fs.Sub(assets, "assets")
                r.StaticFS("/assets", http.FS(sub))
                r.HEAD("/ping", func(c *gin.Context) {})
                r.GET("/ping", func(c *gin.Context) { c.String(200, "pong") })
                r.Run(":" + os.Getenv("HTTP_PORT"))
            }
        """,
        "assets/logo.svg": "<svg/>\n",
    })
    ins = goproject.inspect(root)
    assert ins.embedded == ["assets"]
    assert ins.assets == []  # embedded: nothing to ship
    assert ins.health == "/ping"
    assert ins.port is not None
    assert (ins.port.name, ins.port.default) == ("HTTP_PORT", None)
    assert not ins.graceful
    r = run_cli("init", str(root))
    assert r.code == 0, r.err
    assert "warning: no graceful shutdown on SIGTERM found" in r.err
    text = (root / "goship.toml").read_text()
    assert "Embedded with //go:embed, nothing to ship: assets" in text
    assert "WARNING: no graceful shutdown on SIGTERM found" in text
    cfg = parse(tomllib.loads(text)).base
    assert cfg.app.name == "pinger"
    assert cfg.run.port_env == "HTTP_PORT"
    assert cfg.app.stamp == {"main.version": "{version}"}


def test_hard_coded_port_and_no_health_route(run_cli: Run, tmp_path: Path) -> None:
    root = project(tmp_path / "legacy", {
        "go.mod": "module legacy\n\ngo 1.21\n",
        "server/main.go": """
            package main

            import "net/http"

            func main() {
                http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {})
                http.ListenAndServe("0.0.0.0:8081", nil)
            }
        """,
        "static/index.html": "<p>hi</p>\n",
    })
    ins = goproject.inspect(root)
    assert ins.mains == ["server"]
    assert not ins.gin
    assert ins.health is None
    assert ins.port is None
    assert ins.hardcoded_port == 8081
    assert ins.assets == ["static"]  # found by convention
    r = run_cli("init", str(root))
    assert r.code == 0, r.err
    assert "no health route found; using /health" in r.err
    assert "the port 8081 is hard-coded at server/main.go:7: change the code" in r.err
    text = (root / "goship.toml").read_text()
    assert "WARNING: no port setting found (port 8081 is hard-coded)" in text
    assert "WARNING: no health route found" in text
    cfg = parse(tomllib.loads(text)).base
    assert cfg.run.port_env == "PORT"
    assert cfg.app.stamp == {}
    assert "GIN_MODE" not in cfg.run.env


def test_init_refuses_to_overwrite_without_force(run_cli: Run, tmp_path: Path) -> None:
    root = project(tmp_path / "p", {"go.mod": "module p\n",
                                    "main.go": "package main\nfunc main() {}\n"})
    (root / "goship.toml").write_text("# mine\n")
    r = run_cli("init", str(root))
    assert r.code == 2
    assert "goship.toml exists; pass --force to overwrite it" in r.err
    assert (root / "goship.toml").read_text() == "# mine\n"
    assert run_cli("init", str(root), "--force").code == 0
    assert (root / "goship.toml").read_text().startswith("# goship.toml for p")


def test_init_errors(run_cli: Run, tmp_path: Path) -> None:
    r = run_cli("init", str(tmp_path))
    assert r.code == 2
    assert "no go.mod here" in r.err
    project(tmp_path, {"go.mod": "module lib\n", "lib.go": "package lib\n"})
    r = run_cli("init", str(tmp_path))
    assert r.code == 2
    assert "no main package found" in r.err
    r = run_cli("init", str(tmp_path), "--name", "Bad;Name")
    assert r.code == 2
    assert "--name" in r.err


@pytest.mark.parametrize(("src", "expected"), [
    ('r.GET("/healthz", h)', "/healthz"),
    ('r.Handle("GET", "/ready", h)', "/ready"),
    ('r.Any("/livez", h)', "/livez"),
    ('r.POST("/health", h)', None),
    ('r.GET("/users/:id", h)', None),
    ('/* r.GET("/health", h) */', None),
    ('r.GET("/status", h); r.GET("/health", h)', "/health"),
])
def test_health_route_detection(src: str, expected: str | None) -> None:
    assert goproject.pick_health(goproject.find_routes(src)) == expected


@pytest.mark.parametrize(("src", "name", "default"), [
    ('p := os.Getenv("PORT")\nif p == "" { p = "8080" }', "PORT", 8080),
    ('addr := ":" + os.Getenv("SERVER_PORT")', "SERVER_PORT", None),
    ('v, ok := os.LookupEnv("APP_PORT"); if !ok { v = ":7000" }', "APP_PORT", 7000),
    ('os.Getenv("DATABASE_URL")', None, None),
])
def test_port_detection(src: str, name: str | None, default: int | None) -> None:
    found = goproject.find_port(src)
    if name is None:
        assert found is None
    else:
        assert found is not None
        assert (found.name, found.default) == (name, default)


@pytest.mark.parametrize(("src", "dirs"), [
    ('r.LoadHTMLGlob("templates/*")', ["templates"]),
    ('r.LoadHTMLFiles("views/a.html", "views/b.html")', ["views"]),
    ('r.Static("/s", "./public/static")', ["public/static"]),
    ('r.StaticFile("/favicon.ico", "./resources/favicon.ico")', ["resources"]),
    ('r.StaticFS("/s", http.Dir("web/dist"))', ["web/dist"]),
    ('r.Static("/s", "/var/www")', []),
    ('r.LoadHTMLGlob("../shared/*")', []),
])
def test_asset_detection(src: str, dirs: list[str]) -> None:
    assert goproject.find_asset_refs(src) == dirs


def test_string_vars() -> None:
    src = """
        var Version = "dev"
        var commit string
        var (
            date, builtBy string
            count = 3
            derived = fmt.Sprint(1)
        )
        const BuildTime = "x"
    """
    assert goproject.find_string_vars(textwrap.dedent(src)) == [
        "date", "builtBy", "Version", "commit"]


@pytest.mark.parametrize(("module", "name"), [
    ("github.com/acme/shop", "shop"), ("github.com/acme/shop/v3", "shop"),
    ("example.com/My_Service", "my-service"), ("monolith", "monolith"), ("x/2fa", "app-2fa"),
])
def test_default_app_name(module: str, name: str) -> None:
    assert goproject.default_app_name(module) == name


def test_monorepo_root_points_to_the_module_and_buildinfo_builtat(
        run_cli: Run, tmp_path: Path) -> None:
    """go.mod in server/ (the admin monorepo shape); Version, GitCommit and BuiltAt of a
    buildinfo package (issue #12: BuiltAt was missed); the name is not just "server"."""
    root = project(tmp_path / "admin", {
        "web/package.json": '{"scripts": {"build": "vite build"}}\n',
        "server/go.mod": GIN_MOD.format(module="github.com/acme/admin/server"),
        "server/main.go": """
            package main

            import (
                "os"

                "github.com/acme/admin/server/pkg/buildinfo"
                "github.com/gin-gonic/gin"
            )

            func main() {
                r := gin.Default()
                r.GET("/health", func(c *gin.Context) { c.String(200, buildinfo.Version) })
                r.Run(":" + os.Getenv("PORT"))
            }
        """,
        "server/pkg/buildinfo/buildinfo.go": """
            package buildinfo

            var (
                Version   = "dev"
                GitCommit = "none"
                BuiltAt   = "unknown"
            )
        """,
    })
    r = run_cli("init", str(root))
    assert r.code == 0, r.err
    cfg = parse(tomllib.loads((root / "goship.toml").read_text())).base
    assert cfg.app.module_dir == "server"
    assert cfg.app.name == "admin-server"
    prefix = "github.com/acme/admin/server/pkg/buildinfo"
    assert cfg.app.stamp == {f"{prefix}.Version": "{version}",
                             f"{prefix}.GitCommit": "{commit}",
                             f"{prefix}.BuiltAt": "{build_time}"}
    assert cfg.run.health.path == "/health"


def test_well_known_base_port_is_warned(run_cli: Run, tmp_path: Path) -> None:
    root = project(tmp_path / "p", {
        "go.mod": GIN_MOD.format(module="example.com/p"),
        "main.go": """
            package main

            import ("os"; "github.com/gin-gonic/gin")

            func main() {
                port := os.Getenv("PORT")
                if port == "" { port = "9000" }
                gin.Default().Run(":" + port)
            }
        """,
    })
    r = run_cli("init", str(root), "--stdout")
    assert r.code == 0, r.err
    assert "port 9100 is node_exporter's well-known port" in r.err


def test_only_the_chosen_binary_counts(tmp_path: Path) -> None:
    """Another main package's /health, its data dir and its flag say nothing about this
    service; uploads under static/ are data, not assets; -X of the Makefile kept."""
    root = project(tmp_path / "two", {
        "go.mod": GIN_MOD.format(module="example.com/two"),
        "cmd/api/main.go": """
            package main

            import "github.com/gin-gonic/gin"

            func main() {
                r := gin.New()
                r.Static("/static", "./static")
                r.GET("/ping", func(c *gin.Context) {})
                r.POST("/upload", func(c *gin.Context) {
                    f, _ := c.FormFile("f")
                    c.SaveUploadedFile(f, "static/uploads/"+f.Filename)
                })
                r.Run(":8080")
            }
        """,
        "cmd/tool/main.go": """
            package main

            import ("flag"; "os"; "github.com/gin-gonic/gin")

            func main() {
                addr := flag.String("addr", ":9999", "")
                os.MkdirAll("data", 0o755)
                r := gin.New()
                r.GET("/health", func(c *gin.Context) {})
                r.Run(*addr)
            }
        """,
        "static/app.css": "body{}\n",
        "Makefile": "build:\n\tgo build -ldflags '-X main.Env=production "
                    "-X example.com/two/internal/version.Version=$(V)' ./cmd/api\n",
    })
    ins = goproject.inspect(root, "cmd/api")
    assert ins.health == "/ping"
    assert ins.port_kind == "hardcoded"
    assert ins.args == []
    assert ins.data_dirs == ["static/uploads"]
    assert ins.assets == ["static"]
    assert any("static/uploads holds user uploads" in w for w in ins.warnings)
    assert ins.literal_stamps == {"main.Env": "production"}
    assert [s.flag for s in ins.stamps] == ["example.com/two/internal/version.Version"]
