"""Host functions the embedded engine adds to regorus: conftest's builtins and OPA's it lacks.

conftest gives policies `parse_config(parser, text)`, `parse_config_file(path)`
and `parse_combined_config_files(paths)`; OPA gives `rego.metadata.rule()`.
regorus runs Python functions as extensions, but tells them nothing about the
caller, and the last two need it: a file path is relative to the directory of
the policy that calls it, and the metadata are those of the rule the call is
in. So each such call is renamed in the policy text, before regorus parses it,
to an extension of the same length bound to that policy file or rule (columns
in messages stay right). Files are read only below the repository (`root`):
nothing in a checked repository is trusted. `data.conftest.file` comes from a
small generated module whose value `FileSlot` sets per document. The
functions parse with `cd_checks.parsers` (imported when first called). This
module never evaluates Rego itself.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cd_checks.rego import shadowing
from cd_checks.rego.model import FileInfo

# OPA's builtin functions (v1.x). A call regorus cannot find is a gap of the embedded
# engine when its name is here (that rule fails to evaluate), a typo otherwise (OPA
# refuses to compile it, and so do we).
_OPA_BUILTIN_NAMES = """
    abs all and any array.concat array.flatten array.reverse array.slice assign
    base64.decode base64.encode base64.is_valid base64url.decode base64url.encode
    base64url.encode_no_pad bits.and bits.lsh bits.negate bits.or bits.rsh bits.xor
    cast_array cast_boolean cast_null cast_object cast_set cast_string ceil concat
    contains count crypto.hmac.equal crypto.hmac.md5 crypto.hmac.sha1 crypto.hmac.sha256
    crypto.hmac.sha512 crypto.md5 crypto.parse_private_keys crypto.sha1 crypto.sha256
    crypto.x509.parse_and_verify_certificates
    crypto.x509.parse_and_verify_certificates_with_options
    crypto.x509.parse_certificate_request crypto.x509.parse_certificates
    crypto.x509.parse_keypair crypto.x509.parse_rsa_private_key div endswith eq equal
    floor format_int glob.match glob.quote_meta graph.reachable graph.reachable_paths
    graphql.is_valid graphql.parse graphql.parse_and_verify graphql.parse_query
    graphql.parse_schema graphql.schema_is_valid gt gte hex.decode hex.encode http.send
    indexof indexof_n internal.member_2 internal.member_3 internal.print intersection
    io.jwt.decode io.jwt.decode_verify io.jwt.encode_sign io.jwt.encode_sign_raw
    io.jwt.verify_eddsa io.jwt.verify_es256 io.jwt.verify_es384 io.jwt.verify_es512
    io.jwt.verify_hs256 io.jwt.verify_hs384 io.jwt.verify_hs512 io.jwt.verify_ps256
    io.jwt.verify_ps384 io.jwt.verify_ps512 io.jwt.verify_rs256 io.jwt.verify_rs384
    io.jwt.verify_rs512 is_array is_boolean is_null is_number is_object is_set is_string
    json.filter json.is_valid json.marshal json.marshal_with_options json.match_schema
    json.patch json.remove json.unmarshal json.verify_schema lower lt lte max min minus
    mul neq net.cidr_contains net.cidr_contains_matches net.cidr_expand
    net.cidr_intersects net.cidr_is_valid net.cidr_merge net.cidr_overlap
    net.lookup_ip_addr numbers.range numbers.range_step object.filter object.get
    object.keys object.remove object.subset object.union object.union_n opa.runtime or
    plus print product providers.aws.sign_req rand.intn re_match
    regex.find_all_string_submatch_n regex.find_n regex.globs_match regex.is_valid
    regex.match regex.replace regex.split regex.template_match rego.metadata.chain
    rego.metadata.rule rego.parse_module rem replace round semver.compare semver.is_valid
    set_diff sort split sprintf startswith strings.any_prefix_match
    strings.any_suffix_match strings.count strings.render_template strings.replace_n
    strings.reverse substring sum time.add_date time.clock time.date time.diff
    time.format time.now_ns time.parse_duration_ns time.parse_ns time.parse_rfc3339_ns
    time.weekday to_number trace trim trim_left trim_prefix trim_right trim_space
    trim_suffix type_name union units.parse units.parse_bytes upper urlquery.decode
    urlquery.decode_object urlquery.encode urlquery.encode_object uuid.parse uuid.rfc4122
    walk yaml.is_valid yaml.marshal yaml.unmarshal
    """
OPA_BUILTINS = frozenset(_OPA_BUILTIN_NAMES.split())  # noqa: SIM905 - a list too long to quote
# Errors of this module that are cd-checks' own limits, never a builtin error to ignore.
GAP = "not supported by cd-checks' embedded engine"
# Bytes a policy may read through parse_config_file/parse_combined_config_files, per file.
MAX_FILE_BYTES = 16 * 2**20
FILE_FUNCTION = "cd_checks_internal.conftest_file"
FILE_MODULE = "<cd-checks: data.conftest.file>"

_CODE_SKIP = re.compile(rb'"(?:\\.|[^"\\\n])*"|`[^`]*`|#[^\n]*')
_CALL = re.compile(
    rb"\b(?P<name>rego\.metadata\.rule|parse_config_file|parse_combined_config_files)\("
)
_PREFIX = {
    b"rego.metadata.rule": "_cdmdr_",
    b"parse_config_file": "_cdpcf_",
    b"parse_combined_config_files": "_cdpccf_",
}


@dataclass(frozen=True)
class Extension:
    """One function to hand to regorus' `add_extension`."""

    name: str
    arity: int
    function: Callable[..., Any]


class FileSlot:
    """`data.conftest.file` while a document is evaluated (set before each one)."""

    def __init__(self) -> None:
        self.value: FileInfo | None = None

    def read(self) -> Any:
        if self.value is None:
            return None
        return {"name": self.value.name, "dir": self.value.dir}


def file_module() -> str:
    return f"package conftest\n\nfile := {FILE_FUNCTION}()\n"


def file_info(path: str, root: Path | None = None) -> FileInfo:
    """conftest's `data.conftest.file` for a file path: its base name and absolute directory."""
    full = Path(os.path.abspath(Path(root or Path.cwd()) / path))
    return FileInfo(full.name, str(full.parent))


def common() -> list[Extension]:
    """The extensions every policy set gets (the per-call ones come from `rewrite`)."""
    return [Extension("parse_config", 2, parse_config)]


# -- renaming calls that need to know their caller -------------------------------------


@dataclass(frozen=True)
class Rewritten:
    text: str
    extensions: tuple[Extension, ...]


def rewrite(
    name: str,
    text: str,
    *,
    index: int,
    root: Path | None,
    module: dict[str, Any] | None,
) -> Rewritten:
    """`text` with each call of a caller-aware function renamed, and the functions to add.

    `index` makes the names unique across files; `module` (the AST of a first parse,
    None when there was none) places each `rego.metadata.rule()` in its rule and
    finds the comprehension variables `shadowing` renames.
    """
    data = text.encode("utf-8")
    rule_spans = RuleSpans.of(module) if module is not None else None
    if module is not None:
        data = shadowing.apply(data, shadowing.renames(module, data))
    skipped = _skipped(data)
    out = bytearray(data)
    extensions: list[Extension] = []
    for number, match in enumerate(m for m in _CALL.finditer(data) if m.start() not in skipped):
        target = match.group("name")
        fresh = _fresh_name(target, index * 10_000 + number)
        out[match.start() : match.start() + len(target)] = fresh.encode("ascii")
        extensions.append(_extension(fresh, target, name, match.start(), root, rule_spans, text))
    return Rewritten(out.decode("utf-8"), tuple(extensions))


def needs_module(text: str) -> bool:
    """Whether `rewrite` needs the parsed module: for rego.metadata.rule(), or for a
    comprehension (`|`) with a `some ... in` that may shadow (see `shadowing`)."""
    return "rego.metadata.rule" in text or ("|" in text and " in " in text)


def _skipped(data: bytes) -> set[int]:
    """Byte offsets inside strings and comments, where a name is not a call."""
    skipped: set[int] = set()
    for match in _CODE_SKIP.finditer(data):
        skipped.update(range(match.start(), match.end()))
    return skipped


def _fresh_name(target: bytes, number: int) -> str:
    prefix = _PREFIX[target]
    return prefix + str(number).zfill(len(target) - len(prefix))


def _extension(
    fresh: str,
    target: bytes,
    policy: str,
    offset: int,
    root: Path | None,
    spans: RuleSpans | None,
    text: str,
) -> Extension:
    if target == b"rego.metadata.rule":
        line = spans.rule_line(offset) if spans is not None else None
        annotations = rule_annotations(text, line) if line is not None else {}
        return Extension(fresh, 0, lambda: annotations)
    reader = FileReader(Path(policy).parent, root)
    if target == b"parse_config_file":
        return Extension(fresh, 1, reader.parse_config_file)
    return Extension(fresh, 1, reader.parse_combined_config_files)


@dataclass(frozen=True)
class RuleSpans:
    """Where each rule definition of one file starts and ends (byte offsets), and its line."""

    spans: tuple[tuple[int, int, int], ...]

    @classmethod
    def of(cls, module_ast: dict[str, Any]) -> RuleSpans:
        found = []
        for rule in module_ast.get("rules", []):
            body = rule.get("Spec") or rule.get("Default") or {}
            span = body.get("span", {})
            if {"start", "end", "line"} <= span.keys():
                found.append((int(span["start"]), int(span["end"]), int(span["line"])))
        return cls(tuple(found))

    def rule_line(self, offset: int) -> int | None:
        inside = [s for s in self.spans if s[0] <= offset < s[1]]
        return min(inside, key=lambda s: s[1] - s[0])[2] if inside else None


def rule_annotations(text: str, line: int) -> dict[str, Any]:
    """The rule-scope METADATA block right above line `line` (1-based), as OPA reads it."""
    lines = text.split("\n")
    block: list[str] = []
    at = line - 2
    while at >= 0 and lines[at].startswith("#"):
        block.insert(0, lines[at])
        at -= 1
    starts = [i for i, text_line in enumerate(block) if text_line.strip() == "# METADATA"]
    if not starts:
        return {}
    yaml_text = "\n".join(text_line[1:] for text_line in block[starts[-1] + 1 :])
    try:
        value = yaml.safe_load(_dedent(yaml_text)) or {}
    except yaml.YAMLError:
        return {}  # regorus parsed the module; OPA would have refused it
    if not isinstance(value, dict):
        return {}
    value.setdefault("scope", "rule")
    return json.loads(json.dumps(value, default=str)) if value["scope"] == "rule" else {}


def _dedent(text: str) -> str:
    lines = [line for line in text.split("\n") if line.strip()]
    indent = min((len(line) - len(line.lstrip(" ")) for line in lines), default=0)
    return "\n".join(line[indent:] for line in text.split("\n"))


# -- conftest's parse_config* ----------------------------------------------------------


def parse_config(parser: Any, text: Any) -> Any:
    """conftest's `parse_config(parser, text)`: the text parsed into one object."""
    if not isinstance(parser, str) or not isinstance(text, str):
        raise ValueError("parse_config: the parser name and the configuration must be strings")
    return _one_object(_parse(parser, text, ""), "parse_config")


class FileReader:
    """`parse_config_file` and `parse_combined_config_files` for one policy file."""

    def __init__(self, directory: Path, root: Path | None) -> None:
        self.directory = directory
        self.root = (root or Path.cwd()).resolve()

    def parse_config_file(self, path: Any) -> Any:
        if not isinstance(path, str):
            raise ValueError("parse_config_file: the path must be a string")
        shown, parser, text = self._read(path, "parse_config_file")
        return _one_object(_parse(parser, text, shown), "parse_config_file")

    def parse_combined_config_files(self, paths: Any) -> Any:
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ValueError("parse_combined_config_files: the argument must be an array of paths")
        combined: list[dict[str, Any]] = []
        for path in paths:
            shown, parser, text = self._read(path, "parse_combined_config_files")
            combined += [{"path": shown, "contents": c} for c in _configs(parser, text, shown)]
        return sorted(combined, key=lambda entry: str(entry["path"]))

    def _read(self, path: str, function: str) -> tuple[str, str, str]:
        """The path as conftest shows it (joined to the policy's directory), its parser, text."""
        shown = os.path.normpath(self.directory / path)
        full = Path(shown).resolve()
        if not full.is_relative_to(self.root):
            raise ValueError(f"{function}: {shown}: outside the repository, not read")
        from cd_checks.parsers import parser_for

        parser = parser_for(shown)
        if parser is None:
            raise ValueError(f"{function}: {shown}: no parser for this kind of file")
        return shown, parser, _read_text(full, shown, function)


def _read_text(full: Path, shown: str, function: str) -> str:
    try:
        with full.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"{function}: {shown}: no such file or directory") from None
    except OSError as exc:
        raise ValueError(f"{function}: {shown}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{function}: {shown}: larger than {MAX_FILE_BYTES // 2**20} MB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{function}: {shown}: not UTF-8 text ({exc.reason})") from None


def _parse(parser: str, text: str, path: str) -> list[Any]:
    from cd_checks.parsers import ParseError, parse_text

    try:
        return parse_text(parser, text, path)
    except ParseError as exc:
        where = f"{path}:{exc.line}: " if path and exc.line else (f"{path}: " if path else "")
        raise ValueError(f"{where}{exc.message}") from None


def _one_object(documents: Sequence[Any], function: str) -> Any:
    """conftest unmarshals into a map: one object (nothing: an empty one), else an error."""
    if not documents:
        return {}
    if len(documents) == 1 and isinstance(documents[0], dict):
        return documents[0]
    raise ValueError(f"{function}: the configuration is not one object")


def _configs(parser: str, text: str, path: str) -> Iterator[Any]:
    """A file's documents as conftest combines them: a list's members one by one."""
    documents = _parse(parser, text, path)
    if not documents:  # an empty file: conftest's contents are null
        yield None
        return
    value: Any = documents[0] if len(documents) == 1 else documents
    if isinstance(value, list):
        yield from value
    else:
        yield value
