from goship.cli.main import run

run()
