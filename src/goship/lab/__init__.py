"""`goship lab`: a fleet of real Linux hosts on this machine.

Each host is a network namespace on a private bridge, a copy-on-write overlay of / with a
tmpfs upper layer, and a PID namespace with systemd as PID 1 running sshd and nginx. State
lives under /run so `goship lab down` can clean up even after goship crashed."""
