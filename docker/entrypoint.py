#!/usr/bin/env python3
"""The trainer image's entrypoint: make the outputs folder writable, drop root, run the command.

On a Linux host where ``./outputs`` does not exist yet, Docker creates it for the bind mount owned by root, so a
process running as an ordinary user cannot write there (running the container as the host user with ``user:`` does
not help: the folder is created before the container starts). The trainer service therefore starts as root; this
entrypoint, as root only:

1. creates ``/work/outputs`` (``SAFEALIGN_OUTPUTS``) if missing;
2. picks the user to run as: ``SAFEALIGN_UID`` / ``SAFEALIGN_GID`` when set (compose passes the host's ``UID`` /
   ``GID`` from the environment or ``.env``), otherwise the owner of the folder when that is not root (the host
   user who created ``./outputs``), otherwise 1000:1000 (the image's user ``safealign``);
3. gives the folder to that user when it belongs to root (the one Docker created; nothing else is chowned);
4. drops to that user (groups cleared, gid, then uid; ``HOME`` of that user, or ``/tmp``) and fails with a clear
   message when the folder is still not writable, e.g. owned by another host user than ``UID``.

Started as another user (the image's default ``safealign``, e.g. the tensorboard service), it runs the command
unchanged. ``SAFEALIGN_UID=0`` keeps root (rootless Docker, where container root is the host user).
"""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Mapping, Sequence

DEFAULT_IDS = (1000, 1000)
"""The image's user ``safealign`` (Dockerfile)."""
OUTPUTS = "/work/outputs"


def _id(env: Mapping[str, str], name: str) -> int | None:
    text = str(env.get(name) or "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise SystemExit(f"entrypoint: {name}={text!r} is not a numeric id (set UID/GID to `id -u` / `id -g`)")
    return int(text)


def target_ids(env: Mapping[str, str], owner: tuple[int, int]) -> tuple[int, int]:
    """``(uid, gid)`` to run as: ``SAFEALIGN_UID``/``SAFEALIGN_GID``, else the outputs folder's ``owner`` unless
    root, else :data:`DEFAULT_IDS` (a missing GID follows the chosen uid's rule)."""
    uid, gid = _id(env, "SAFEALIGN_UID"), _id(env, "SAFEALIGN_GID")
    fallback = owner if owner[0] != 0 else DEFAULT_IDS
    if uid is None:
        uid = fallback[0]
    if gid is None:
        gid = fallback[1] if uid == fallback[0] else uid
    return uid, gid


def prepare(outputs: str, env: Mapping[str, str]) -> tuple[int, int]:
    """Steps 1-3 (as root): create ``outputs``, choose the user, chown the folder when root owns it."""
    os.makedirs(outputs, exist_ok=True)
    st = os.stat(outputs)
    uid, gid = target_ids(env, (st.st_uid, st.st_gid))
    if st.st_uid == 0 and uid != 0:
        os.chown(outputs, uid, gid)
    return uid, gid


def drop_to(uid: int, gid: int) -> None:
    """Step 4: become ``uid:gid`` (no supplementary groups) with that user's ``HOME``."""
    try:
        entry = pwd.getpwuid(uid)
        home, name = entry.pw_dir, entry.pw_name
    except KeyError:
        home, name = "/tmp", str(uid)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    os.environ.update(HOME=home, USER=name)


def main(argv: Sequence[str]) -> None:
    command = list(argv) or ["python", "-m", "experiments.run", "env=carla"]
    if os.getuid() == 0:
        outputs = os.environ.get("SAFEALIGN_OUTPUTS", OUTPUTS)
        uid, gid = prepare(outputs, os.environ)
        if uid != 0:
            drop_to(uid, gid)
        if not os.access(outputs, os.W_OK | os.X_OK):
            st = os.stat(outputs)
            raise SystemExit(f"entrypoint: {outputs} (./outputs on the host) belongs to {st.st_uid}:{st.st_gid} and "
                             f"is not writable by {uid}:{gid}; set UID and GID (in .env or exported) to its owner, "
                             f"or chown it on the host")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
