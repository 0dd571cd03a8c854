"""Audit signatures: ssh-keygen keys work, signatures interoperate with `ssh-keygen -Y`,
allowed signers are read as git reads them, and the per-user key is private."""

from __future__ import annotations

import base64
import stat
import subprocess
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cd_checks.audit import signing
from cd_checks.audit.integrity import open_keys
from cd_checks.audit.record import AuditRecord, chain, compute_hash
from cd_checks.audit.signing import Keyring, Signer, check, load_allowed, sign
from cd_checks.audit.store import FileStore
from cd_checks.audit.trail import AuditTrail
from cd_checks.errors import AuditError, ConfigError


def keygen(path: Path, *args: str, comment: str = "ci@example") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-N", "", "-C", comment, "-f", str(path), *args], check=True
    )
    return path


def _ring(text: str, tmp: Path) -> Keyring:
    path = tmp / f"allowed-{len(list(tmp.glob('allowed-*')))}"
    path.write_text(text)
    return Keyring(load_allowed(path, "allowed_signers"), ("allowed_signers",))


def record(signer: Signer | None = None, **fields: object) -> AuditRecord:
    base = AuditRecord(kind="stage", id="r0", environment="prod", started_at="2026-01-02T00:00:00Z")
    return sign(chain(replace(base, **fields), None), signer)  # type: ignore[arg-type]


@pytest.fixture
def ci_key(tmp_path: Path) -> Path:
    return keygen(tmp_path / "ci_ed25519", "-t", "ed25519")


def test_an_ssh_keygen_key_from_the_environment_as_path_or_text(ci_key: Path) -> None:
    by_path = signing.env_signer({"CD_CHECKS_AUDIT_KEY": str(ci_key)})
    by_text = signing.env_signer({"CD_CHECKS_AUDIT_KEY": ci_key.read_text()})
    assert by_path is not None and by_text is not None and by_path.public == by_text.public
    listed = subprocess.run(
        ["ssh-keygen", "-lf", f"{ci_key}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert by_path.fingerprint == listed
    assert signing.env_signer({}) is None


def test_a_base64_encoded_key_as_a_masked_gitlab_variable_holds_it(ci_key: Path) -> None:
    """GitLab masks only values without spaces: `base64 -w0 KEY` is what the variable holds."""
    encoded = subprocess.run(
        ["base64", "-w0", str(ci_key)], capture_output=True, text=True, check=True
    ).stdout
    assert " " not in encoded and "\n" not in encoded
    by_base64 = signing.env_signer({"CD_CHECKS_AUDIT_KEY": encoded + "\n"})
    by_path = signing.env_signer({"CD_CHECKS_AUDIT_KEY": str(ci_key)})
    assert by_base64 is not None and by_path is not None and by_base64.public == by_path.public
    # Base64 of anything but a key is read as a path, as before.
    with pytest.raises(AuditError, match="cannot read the key file") as not_a_key:
        signing.env_signer({"CD_CHECKS_AUDIT_KEY": "bm90IGEga2V5"})
    assert "bm90IGEga2V5" not in str(not_a_key.value)  # maybe a mangled secret: never echoed


def test_a_signature_verifies_with_ssh_keygen(ci_key: Path, tmp_path: Path) -> None:
    signer = signing.env_signer({"CD_CHECKS_AUDIT_KEY": str(ci_key)})
    assert signer is not None
    signed = record(replace(signer, principal="ci@example"))
    (tmp_path / "allowed").write_text(
        f"ci@example {(ci_key.parent / 'ci_ed25519.pub').read_text()}"
    )
    (tmp_path / "sig").write_text(signing.armoured(signed.signature["sig"]))
    done = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I", "ci@example"]
        + ["-n", "cd-checks-audit", "-s", str(tmp_path / "sig")],
        input=signed.hash,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert 'Good "cd-checks-audit" signature for ci@example' in done.stdout


def test_a_signature_made_by_ssh_keygen_verifies_here(ci_key: Path, tmp_path: Path) -> None:
    unsigned = record()
    message = tmp_path / "hash"
    message.write_text(unsigned.hash)
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", "cd-checks-audit", "-f", str(ci_key)]
        + [str(message)],
        check=True,
        capture_output=True,
    )
    armour = (tmp_path / "hash.sig").read_text().splitlines()[1:-1]
    signer = signing.env_signer({"CD_CHECKS_AUDIT_KEY": str(ci_key)})
    assert signer is not None
    signature = {"signer": "ci", "key": signer.fingerprint, "sig": "".join(armour)}
    ring = _ring(f"ci {(ci_key.parent / 'ci_ed25519.pub').read_text()}", tmp_path)
    assert check(replace(unsigned, signature=signature), ring).status == "good"


def test_keys_that_cannot_sign_are_one_error_line_without_the_secret(tmp_path: Path) -> None:
    encrypted = tmp_path / "enc"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(encrypted)],
        check=True,
    )
    with pytest.raises(AuditError, match="it is encrypted"):
        signing.env_signer({"CD_CHECKS_AUDIT_KEY": str(encrypted)})
    rsa = keygen(tmp_path / "rsa", "-t", "rsa", "-b", "2048")
    with pytest.raises(AuditError, match="not an Ed25519 key"):
        signing.env_signer({"CD_CHECKS_AUDIT_KEY": str(rsa)})
    with pytest.raises(AuditError, match="cannot read the key file") as missing:
        signing.env_signer({"CD_CHECKS_AUDIT_KEY": str(tmp_path / "nope")})
    assert "nope" in str(missing.value)
    secret = "AAAA-very-secret\nline two"
    with pytest.raises(AuditError) as mangled:
        signing.env_signer({"CD_CHECKS_AUDIT_KEY": secret})
    assert "secret" not in str(mangled.value) and "CD_CHECKS_AUDIT_KEY" in str(mangled.value)


def test_the_per_user_key_is_private_generated_once_and_allowed(tmp_path: Path) -> None:
    home = tmp_path / "state" / "cd-checks"
    first = signing.user_signer(home, "alice@laptop")
    again = signing.user_signer(home, "alice@laptop")
    assert first.public == again.public
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "audit_ed25519").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "allowed_signers").stat().st_mode) == 0o600
    [listed] = load_allowed(home / "allowed_signers")
    assert listed.key == first.blob and listed.principals == ("alice@laptop",)
    (home / "audit_ed25519").chmod(0o644)
    with pytest.raises(AuditError, match="permissions 0644 are too open"):
        signing.user_signer(home, "alice@laptop")


def test_state_home_follows_xdg() -> None:
    assert signing.state_home({"XDG_STATE_HOME": "/x/state"}) == Path("/x/state/cd-checks")
    default = signing.state_home({"XDG_STATE_HOME": "relative", "HOME": "/home/a"})
    assert default == Path("/home/a/.local/state/cd-checks")


def _signer(tmp_path: Path, name: str) -> Signer:
    return signing.user_signer(tmp_path / name, name)


def test_check_names_good_unsigned_bad_and_unknown_signatures(tmp_path: Path) -> None:
    alice, mallory = _signer(tmp_path, "alice"), _signer(tmp_path, "mallory")
    ring = _ring(alice.allowed_line() + "\n", tmp_path)
    good = record(alice)
    assert check(good, ring) == signing.Checked("good", "alice", alice.fingerprint)
    assert check(record(), ring).status == "unsigned"
    rehashed = replace(good, actor="mallory")
    rehashed = replace(rehashed, hash=compute_hash(rehashed))
    bad = check(rehashed, ring)
    assert (bad.status, bad.reason) == ("bad", "the signature does not match the record's hash")
    stranger = check(record(mallory), ring)
    assert (stranger.status, stranger.reason) == (
        "unknown",
        "no allowed signers file lists its key",
    )
    posing = replace(good, signature={**good.signature, "signer": "root"})
    assert check(posing, ring).reason == "its key is allowed only for alice"
    borrowed = replace(good, signature={**good.signature, "key": mallory.fingerprint})
    assert check(borrowed, ring).reason == "the signature was made by another key"
    garbage = replace(good, signature={**good.signature, "sig": base64.b64encode(b"x").decode()})
    assert check(garbage, ring).status == "bad"
    assert check(replace(good, signature="nope"), ring).status == "bad"


def test_allowed_signers_are_read_as_git_reads_them(tmp_path: Path) -> None:
    alice, bob, carol = (_signer(tmp_path, n) for n in ("alice", "bob", "carol"))
    key = lambda s: s.allowed_line().split(" ", 1)[1]  # noqa: E731
    text = (
        "# the team\n\n"
        f'*@ci.example,!evil@ci.example namespaces="git,cd-checks-audit" {key(alice)} laptop\n'
        f'bob namespaces="git" {key(bob)}\n'
        f"carol valid-after=20260101,valid-before=20260201Z {key(carol)}\n"
        f"dave cert-authority {key(bob)}\n"
        "erin ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== rsa keys are skipped\n"
    )
    ring = _ring(text, tmp_path)
    assert len(ring.signers) == 3  # cert-authority and RSA lines skipped

    def status(signer: Signer, principal: str, when: str = "2026-01-02T00:00:00Z") -> str:
        return check(record(replace(signer, principal=principal), started_at=when), ring).status

    assert status(alice, "deploy@ci.example") == "good"
    assert status(alice, "evil@ci.example") == "unknown"
    assert status(bob, "bob") == "unknown"  # not allowed to sign in our namespace
    assert status(carol, "carol") == "good"
    assert status(carol, "carol", "2026-03-01T00:00:00Z") == "unknown"
    assert ring.principal_of(alice.blob) is None and ring.principal_of(carol.blob) == "carol"
    broken = tmp_path / "broken"
    broken.write_text(f"ok {key(alice)}\nnot-a-line\n")
    with pytest.raises(AuditError, match=r"signers:2: expected 'principals"):
        load_allowed(broken, "signers")


def test_signatures_are_required_once_the_config_names_signers(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    team = _signer(tmp_path, "team")
    (root / "signers").write_text(f"ci {team.allowed_line().split(' ', 1)[1]}\n")
    ci = {"CI": "true", "XDG_STATE_HOME": str(tmp_path / "xdg")}
    keys = open_keys(root, {"signers": "signers"}, ci)
    assert keys.signer is None and keys.policy.require_signatures and keys.state is None
    assert keys.missing_key is not None and "CD_CHECKS_AUDIT_KEY" in keys.missing_key
    trail = AuditTrail(
        FileStore(root / "audit.jsonl"),
        root,
        lambda: datetime.now(timezone.utc),
        missing_key=keys.missing_key,
    )
    with pytest.raises(AuditError, match="audit records must be signed"):
        trail.append(AuditRecord(kind="incident_open", id="i1"))
    assert not (root / "audit.jsonl").exists()
    assert not open_keys(root, {}, ci).policy.require_signatures
    assert not open_keys(
        root, {"signers": "signers", "require_signatures": False}, ci
    ).policy.require_signatures
    with_key = {**ci, "CD_CHECKS_AUDIT_KEY": (tmp_path / "team" / "audit_ed25519").read_text()}
    signer = open_keys(root, {"signers": "signers"}, with_key).signer
    assert signer is not None and signer.principal == "ci"  # as audit.signers lists it
    local = open_keys(root, {}, {"XDG_STATE_HOME": str(tmp_path / "xdg"), "USER": "al"})
    assert local.signer is not None and local.signer.principal.startswith("al@")
    assert local.policy.keyring.principal_of(local.signer.blob) == local.signer.principal
    with pytest.raises(ConfigError, match="audit.signers: ../x resolves to"):
        open_keys(root, {"signers": "../x"}, ci)
