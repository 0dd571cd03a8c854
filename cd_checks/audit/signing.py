"""Who wrote an audit record: Ed25519 signatures, OpenSSH keys, git's allowed signers.

A record's `signature` is {signer, key, sig}: the principal the writer's key
is listed under, the key's fingerprint (`SHA256:...`, as `ssh-keygen -l`
prints it) and, in base64, an SSHSIG blob (the format of `ssh-keygen -Y
sign`, namespace `cd-checks-audit`) over the record's `hash`. So a record
can also be checked without cd-checks: armour `sig` and run `ssh-keygen -Y
verify -n cd-checks-audit -f allowed_signers -I SIGNER -s FILE` on the hash.

Keys are OpenSSH Ed25519 keys (`ssh-keygen -t ed25519` makes one). The
writer's key comes from `CD_CHECKS_AUDIT_KEY` (the key itself or a path to
it: a CI secret) or, outside CI, from a per-user key this module generates
under `$XDG_STATE_HOME/cd-checks/` (0600, in a 0700 directory) and lists in
the per-user `allowed_signers` file beside it. Allowed signers are read in
git's `gpg.ssh.allowedSignersFile` format (`principals [options] key`); of
the options, `namespaces`, `valid-after` and `valid-before` are honoured
(against the record's own time, as git uses the commit's) and
`cert-authority` lines are skipped: certificates are not supported. The
`cryptography` library's objects and errors stay in this module; it reads
the environment only from the mapping it is handed.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import pwd
import re
import socket
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from cd_checks import state_dir
from cd_checks.audit.record import AuditRecord, Json, parse_time
from cd_checks.errors import AuditError

KEY_ENV = "CD_CHECKS_AUDIT_KEY"
NAMESPACE = "cd-checks-audit"
KEY_TYPE = "ssh-ed25519"
USER_KEY = "audit_ed25519"
USER_SIGNERS = "allowed_signers"
MAGIC = b"SSHSIG"
KEY_TYPES = re.compile(r"^(ssh-|ecdsa-|sk-)")
TOKEN = re.compile(r'(?:[^\s"]|"[^"]*")+')


def state_home(env: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/cd-checks` (default `~/.local/state/cd-checks`): per-user state."""
    return state_dir.user_dir(env)


def make_private_dir(path: Path) -> Path:
    """`mkdir -p path`, the last part 0700 (what it holds is the user's alone)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise AuditError(f"cannot create {path}: {exc}") from exc
    return path


def in_ci(env: Mapping[str, str]) -> bool:
    """A CI job: its home directory is thrown away, so a per-user key would be useless."""
    return env.get("CI", "").lower() not in ("", "0", "false", "no")


# --- the SSH wire format (RFC 4251 strings) ------------------------------------------------


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _strings(data: bytes) -> Iterator[bytes]:
    position = 0
    while position < len(data):
        if position + 4 > len(data):
            raise ValueError("truncated length")
        (size,) = struct.unpack(">I", data[position : position + 4])
        position += 4
        if position + size > len(data):
            raise ValueError("truncated string")
        yield data[position : position + size]
        position += size


def public_blob(raw: bytes) -> bytes:
    """The SSH wire encoding of an Ed25519 public key (what a `.pub` file holds in base64)."""
    return _string(KEY_TYPE.encode()) + _string(raw)


def fingerprint(blob: bytes) -> str:
    """`SHA256:...` as `ssh-keygen -l` prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _signed_data(message: bytes, algorithm: str) -> bytes:
    digest = hashlib.new(algorithm, message).digest()
    parts = (NAMESPACE.encode(), b"", algorithm.encode(), digest)
    return MAGIC + b"".join(_string(p) for p in parts)


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """The writer's key: `principal` is the name the record gives as its signer."""

    principal: str
    public: bytes  # raw 32-byte Ed25519 public key
    seed: bytes = field(repr=False)  # raw 32-byte private key

    @property
    def blob(self) -> bytes:
        return public_blob(self.public)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    def allowed_line(self) -> str:
        """This key's line for an allowed signers file."""
        return f"{self.principal} {KEY_TYPE} {base64.b64encode(self.blob).decode()}"

    def sign(self, message: bytes) -> bytes:
        """An SSHSIG blob over `message` (as `ssh-keygen -Y sign -n cd-checks-audit`)."""
        raw = Ed25519PrivateKey.from_private_bytes(self.seed).sign(_signed_data(message, "sha512"))
        signature = _string(KEY_TYPE.encode()) + _string(raw)
        fields_ = (self.blob, NAMESPACE.encode(), b"", b"sha512", signature)
        return MAGIC + struct.pack(">I", 1) + b"".join(_string(f) for f in fields_)


def parse_private_key(data: bytes, where: str, principal: str = "unknown") -> Signer:
    """An unencrypted OpenSSH Ed25519 private key; anything else is an AuditError."""
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # cryptography: TypeError for a key that needs a passphrase, ValueError for the rest.
        why = "it is encrypted (give an unencrypted key)" if isinstance(exc, TypeError) else exc
        raise AuditError(f"{where}: not a usable OpenSSH private key: {why}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(f"{where}: not an Ed25519 key (make one with ssh-keygen -t ed25519)")
    raw = serialization.Encoding.Raw
    seed = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return Signer(principal, public, seed)


def env_signer(env: Mapping[str, str]) -> Signer | None:
    """The key `CD_CHECKS_AUDIT_KEY` gives (its text, or a path to it), if it is set."""
    value = env.get(KEY_ENV, "")
    if not value.strip():
        return None
    if "-----BEGIN" in value:
        return parse_private_key(value.encode(), KEY_ENV)
    encoded = _base64_key(value)
    if encoded is not None:
        return parse_private_key(encoded, f"{KEY_ENV} (base64)")
    # Never echo the value itself: it may be a mangled secret.
    if "\n" in value or len(value) > 4096:
        raise AuditError(f"{KEY_ENV} is neither an OpenSSH private key nor a path to one")
    path = Path(value).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        # A value that names no file may be a mangled secret: named only if path-shaped.
        shown = f" {path}" if value.startswith(("/", "~", "./")) and " " not in value else ""
        raise AuditError(
            f"{KEY_ENV}: cannot read the key file{shown} it names: {exc.strerror}"
        ) from exc
    return parse_private_key(data, f"{KEY_ENV} ({path})")


def _base64_key(value: str) -> bytes | None:
    """The key text of a base64-encoded key (`base64 -w0 KEY`), else None.

    GitLab masks only values without spaces or line breaks, which a key's own text
    has: its masked variable holds the key base64-encoded.
    """
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        return None
    return decoded if decoded.lstrip().startswith(b"-----BEGIN") else None


def user_principal(env: Mapping[str, str]) -> str:
    """`user@host`, the name a per-user key is listed under (as ssh-keygen's comment)."""
    user = env.get("USER") or env.get("LOGNAME") or pwd.getpwuid(os.getuid()).pw_name
    return f"{user}@{socket.gethostname()}"


def user_signer(directory: Path, principal: str) -> Signer:
    """The per-user key in `directory`, generated (and listed as allowed) on first use."""
    make_private_dir(directory)
    path = directory / USER_KEY
    if not path.exists():
        _generate(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise AuditError(
            f"{path}: permissions {mode:04o} are too open: the key must be private "
            f"(chmod 600 {path})"
        )
    signer = parse_private_key(path.read_bytes(), str(path), principal)
    allowed = directory / USER_SIGNERS
    listed = load_allowed(allowed) if allowed.exists() else ()
    if not any(s.key == signer.blob for s in listed):
        _append_private(allowed, signer.allowed_line() + " cd-checks per-user key\n")
    return signer


def _generate(path: Path) -> None:
    """A new key, written aside then linked into place: of two racing writers, one wins."""
    key = Ed25519PrivateKey.generate()
    text = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)


def _append_private(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


# --- allowed signers ------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowedSigner:
    """One line of an allowed signers file: principal patterns and an Ed25519 key."""

    principals: tuple[str, ...]
    key: bytes  # the SSH wire blob
    source: str  # file:line
    namespaces: tuple[str, ...] | None = None
    valid_after: datetime | None = None
    valid_before: datetime | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def allows(self, principal: str) -> bool:
        """ssh's pattern-list match: a `!pattern` that matches denies, else any match allows."""
        verdicts = [
            not p.startswith("!")
            for p in self.principals
            if fnmatch.fnmatchcase(principal, p.lstrip("!"))
        ]
        return bool(verdicts) and all(verdicts)

    def valid_at(self, moment: datetime | None) -> bool:
        if self.valid_after is None and self.valid_before is None:
            return True
        if moment is None:
            return False
        after = self.valid_after is None or moment >= self.valid_after
        return after and (self.valid_before is None or moment < self.valid_before)


def load_allowed(path: Path, shown: str | None = None) -> tuple[AllowedSigner, ...]:
    """The Ed25519 lines of an allowed signers file (other key types are skipped)."""
    name = shown or str(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"cannot read the allowed signers file {name}: {exc}") from exc
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        signer = _parse_line(line, f"{name}:{number}")
        if signer is not None:
            found.append(signer)
    return tuple(found)


def _parse_line(line: str, where: str) -> AllowedSigner | None:
    tokens = TOKEN.findall(line.strip())
    if not tokens or tokens[0].startswith("#"):
        return None
    if len(tokens) < 3:
        raise AuditError(f"{where}: expected 'principals [options] key-type base64-key'")
    principals = tuple(p for p in tokens[0].strip('"').split(",") if p)
    options: dict[str, str] = {}
    rest = tokens[1:]
    if not KEY_TYPES.match(rest[0]):
        options = _options(rest[0], where)
        rest = rest[1:]
    if len(rest) < 2:
        raise AuditError(f"{where}: expected a key type and a base64 key after the principals")
    if "cert-authority" in options or rest[0] != KEY_TYPE:
        return None  # certificates and other key types never sign cd-checks records
    try:
        blob = base64.b64decode(rest[1], validate=True)
    except ValueError as exc:
        raise AuditError(f"{where}: the key is not base64") from exc
    parts = list(_safe_strings(blob))
    if len(parts) != 2 or parts[0] != KEY_TYPE.encode() or len(parts[1]) != 32:
        raise AuditError(f"{where}: not an ssh-ed25519 public key")
    return AllowedSigner(
        principals,
        blob,
        where,
        tuple(options["namespaces"].split(",")) if "namespaces" in options else None,
        _ssh_time(options.get("valid-after"), where),
        _ssh_time(options.get("valid-before"), where),
    )


def _safe_strings(blob: bytes) -> Iterator[bytes]:
    try:
        yield from list(_strings(blob))
    except ValueError:
        return


def _options(text: str, where: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in re.findall(r'(?:[^,"]|"[^"]*")+', text):
        name, _, value = item.partition("=")
        if name.lower() not in ("cert-authority", "namespaces", "valid-after", "valid-before"):
            raise AuditError(f"{where}: unknown option {name!r}")
        options[name.lower()] = value.strip('"')
    return options


def _ssh_time(text: str | None, where: str) -> datetime | None:
    """YYYYMMDD[HHMM[SS]], UTC with a Z, else local time (as ssh-keygen reads it)."""
    if text is None:
        return None
    utc = text.endswith(("Z", "z"))
    digits = text.rstrip("Zz")
    formats = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    try:
        moment = datetime.strptime(digits, formats[len(digits)])
    except (KeyError, ValueError) as exc:
        raise AuditError(f"{where}: not a time: {text!r} (YYYYMMDD[HHMM[SS]][Z])") from exc
    return moment.replace(tzinfo=timezone.utc) if utc else moment.astimezone()


@dataclass(frozen=True)
class Keyring:
    """Every allowed signer cd-checks knows of: the repository's file, the user's own list."""

    signers: tuple[AllowedSigner, ...] = ()
    sources: tuple[str, ...] = ()  # the files read, for messages

    def principal_of(self, blob: bytes) -> str | None:
        """The first plain (no wildcard) principal a file lists `blob` under."""
        for signer in self.signers:
            if signer.key == blob:
                plain = [p for p in signer.principals if not re.search(r"[*?!]", p)]
                if plain:
                    return plain[0]
        return None

    def sources_of(self, blob: bytes) -> tuple[str, ...]:
        """The file:line of every entry listing `blob`."""
        return tuple(s.source for s in self.signers if s.key == blob)


# --- signing and checking records -----------------------------------------------------------


def sign(record: AuditRecord, signer: Signer | None) -> AuditRecord:
    """`record` (chained: its hash is final) with `signer`'s signature; as is without one."""
    if signer is None:
        return record
    sig = signer.sign(record.hash.encode("ascii"))
    signature = {
        "signer": signer.principal,
        "key": signer.fingerprint,
        "sig": base64.b64encode(sig).decode("ascii"),
    }
    return replace(record, signature=signature)


@dataclass(frozen=True)
class Checked:
    """A record's signature, judged: `status` good | unsigned | bad | unknown."""

    status: str
    signer: str = ""
    key: str = ""
    reason: str = ""


def check(record: AuditRecord, keyring: Keyring) -> Checked:
    """Whether an allowed signer signed this record's hash, and if not, why not."""
    signature = record.signature
    if signature is None:
        return Checked("unsigned")
    if not _well_formed(signature) or not isinstance(record.hash, str):
        return Checked("bad", reason="its signature field is malformed")
    signer, key = str(signature["signer"]), str(signature["key"])
    try:
        blob = _verify_blob(base64.b64decode(signature["sig"], validate=True), record.hash)
    except (ValueError, InvalidSignature) as exc:
        reason = "the signature does not match the record's hash" if str(exc) == "" else str(exc)
        return Checked("bad", signer, key, reason)
    if fingerprint(blob) != key:
        return Checked("bad", signer, key, "the signature was made by another key")
    return _allowed(record, keyring, blob, signer, key)


def _well_formed(signature: Json) -> bool:
    return isinstance(signature, dict) and all(
        isinstance(signature.get(k), str) for k in ("signer", "key", "sig")
    )


def _allowed(record: AuditRecord, keyring: Keyring, blob: bytes, signer: str, key: str) -> Checked:
    entries = [s for s in keyring.signers if s.key == blob]
    if not entries:
        return Checked("unknown", signer, key, "no allowed signers file lists its key")
    usable = [s for s in entries if s.namespaces is None or NAMESPACE in s.namespaces]
    usable = [s for s in usable if s.valid_at(_record_time(record))]
    if not usable:
        where = ", ".join(s.source for s in entries)
        return Checked("unknown", signer, key, f"its key is not valid for this record ({where})")
    if not any(s.allows(signer) for s in usable):
        listed = ", ".join(p for s in usable for p in s.principals)
        return Checked("unknown", signer, key, f"its key is allowed only for {listed}")
    return Checked("good", signer, key)


def _record_time(record: AuditRecord) -> datetime | None:
    moment = record.ended_at or record.started_at
    try:
        return parse_time(moment) if isinstance(moment, str) else None
    except AuditError:
        return None


def _verify_blob(data: bytes, message: str) -> bytes:
    """The public key blob of a valid SSHSIG signature of `message`; ValueError otherwise."""
    if not data.startswith(MAGIC) or data[6:10] != struct.pack(">I", 1):
        raise ValueError("the signature is not an SSHSIG blob")
    parts = list(_strings(data[10:]))
    if len(parts) != 5:
        raise ValueError("the signature is not an SSHSIG blob")
    blob, namespace, _, algorithm, signature = parts
    if namespace != NAMESPACE.encode():
        raise ValueError(f"the signature is for namespace {namespace.decode(errors='replace')!r}")
    if algorithm not in (b"sha256", b"sha512"):
        raise ValueError("the signature uses an unknown hash algorithm")
    key_parts, sig_parts = list(_strings(blob)), list(_strings(signature))
    ed25519 = [KEY_TYPE.encode()]
    if [key_parts[:1], sig_parts[:1]] != [ed25519, ed25519] or len(key_parts) + len(sig_parts) != 4:
        raise ValueError("the signature is not an Ed25519 signature")
    public = Ed25519PublicKey.from_public_bytes(key_parts[1])
    public.verify(sig_parts[1], _signed_data(message.encode("ascii"), algorithm.decode()))
    return blob


def armoured(sig: str) -> str:
    """A record's `sig` as the file `ssh-keygen -Y verify -s` reads."""
    lines = [sig[i : i + 70] for i in range(0, len(sig), 70)]
    return "-----BEGIN SSH SIGNATURE-----\n" + "\n".join(lines) + "\n-----END SSH SIGNATURE-----\n"


def load_keyring(files: Sequence[tuple[Path, str]]) -> Keyring:
    """The allowed signers of each (path, name shown in messages) that exists."""
    signers: list[AllowedSigner] = []
    for path, shown in files:
        signers.extend(load_allowed(path, shown))
    return Keyring(tuple(signers), tuple(shown for _, shown in files))
