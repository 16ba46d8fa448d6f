"""Hostile model artifacts, built from a good one: each adds one thing an unpacker must refuse."""

from __future__ import annotations

import gzip
import io
import tarfile

MiB = 1024 * 1024


def members(artifact: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The members of a (good) artifact with their contents."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(artifact), mode="r:gz") as tar:
        for info in tar:
            f = tar.extractfile(info)
            out.append((info, f.read() if f is not None else b""))
    return out


def repack(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """A tar.gz of ``entries`` exactly as given (names, types and link targets untouched)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w",
                                                                            format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def entry(name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple[
        tarfile.TarInfo, bytes]:
    """One tar member: a file (default), a link (with ``linkname``) or a device."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def with_entries(good: bytes, *extra: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """``good`` with ``extra`` members appended after its own (so unpacking has begun when they come)."""
    return repack(members(good) + list(extra))


def bomb(good: bytes, size: int = 1024 * MiB, chunk: int = 16 * MiB) -> bytes:
    """``good`` plus a member of ``size`` zero bytes, in about ``size / 1000`` bytes of gzip.

    Built as a multi-member gzip stream (one compressed chunk of zeros repeated), which every
    gzip reader reads as one stream, so it costs no time to make however large it unpacks.
    """
    head = io.BytesIO()
    with tarfile.open(fileobj=head, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members(good):
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
        info = tarfile.TarInfo("saved_model/variables/bomb.data")
        info.size = size
        tar.addfile(info)  # the header alone: its content follows as zeros
        prefix = head.getvalue()
    # tarfile wrote the end-of-archive blocks after the header: cut them, the zeros come next
    header_end = prefix.rfind(b"bomb.data")
    header_end = header_end - header_end % 512 + 512
    zeros = gzip.compress(b"\0" * chunk, mtime=0)
    parts = [gzip.compress(prefix[:header_end], mtime=0), zeros * (size // chunk)]
    parts.append(gzip.compress(b"\0" * (2 * 512 + (-size) % 512), mtime=0))  # padding, end of archive
    return b"".join(parts)
