"""One narrow transport behind every side effect on a host: run, put, get."""

from goship.transport.base import Result, Transport
from goship.transport.fake import FakeTransport
from goship.transport.local import LocalTransport
from goship.transport.ssh import SshOptions, SshTransport

__all__ = ["FakeTransport", "LocalTransport", "Result", "SshOptions", "SshTransport",
           "Transport"]
