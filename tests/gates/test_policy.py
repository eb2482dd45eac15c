"""The policy gate: honest skills of every class pass; each evasion attempt fails with its rule."""

from __future__ import annotations

import importlib
import sys
import textwrap
import types
from pathlib import Path

import pytest

from kavi.gates.base import GateContext, GateStatus
from kavi.gates.policy import Finding, PolicyGate, scan_source
from kavi.gates.policy_rules import MODULE_RULES, Allow, classify
from kavi.spec import SkillSpec, make_spec

FIXTURES = Path(__file__).parent / "fixtures" / "policy"
IO = {"input": {"text": "str"}, "output": {"count": "int"}}

SPECS: dict[str, SkillSpec] = {
    "READ_ONLY": make_spec(name="word_count", description="count words", side_effect="READ_ONLY", io_schema=IO),
    "FILE_WRITE": make_spec(
        name="save_note",
        description="save a note",
        side_effect="FILE_WRITE",
        io_schema=IO,
        write_roots=("notes",),
    ),
    "NETWORK": make_spec(
        name="fetch_weather",
        description="fetch the weather",
        side_effect="NETWORK",
        io_schema=IO,
        allow_hosts=("api.example.com",),
    ),
    "SECRET_READ": make_spec(
        name="sign_message",
        description="sign a message",
        side_effect="SECRET_READ",
        io_schema=IO,
        secrets=("API_TOKEN",),
    ),
    "SUBPROCESS": make_spec(
        name="echo_text",
        description="echo text",
        side_effect="SUBPROCESS",
        io_schema=IO,
        executables=("echo",),
    ),
}
FIXTURE_PREFIX = {
    "READ_ONLY": "read_only",
    "FILE_WRITE": "file_write",
    "NETWORK": "network",
    "SECRET_READ": "secret_read",
    "SUBPROCESS": "subprocess",
}


def scan(source: str, side_effect: str = "READ_ONLY", *, test_file: bool = False) -> list[Finding]:
    spec = SPECS[side_effect]
    filename = spec.test_path if test_file else spec.skill_path
    return scan_source(textwrap.dedent(source), filename=filename, spec=spec)


def hits(findings: list[Finding]) -> set[tuple[str, int]]:
    return {(finding.rule, finding.line) for finding in findings}


# -- honest skills pass ----------------------------------------------------------------------------


@pytest.mark.parametrize("side_effect", sorted(SPECS))
def test_honest_skill_and_tests_of_each_class_pass(side_effect: str) -> None:
    spec = SPECS[side_effect]
    prefix = FIXTURE_PREFIX[side_effect]
    skill = (FIXTURES / f"{prefix}_skill.py").read_text()
    tests = (FIXTURES / f"{prefix}_tests.py").read_text()
    assert scan_source(skill, filename=spec.skill_path, spec=spec) == []
    assert scan_source(tests, filename=spec.test_path, spec=spec) == []


@pytest.mark.parametrize("side_effect", ["FILE_WRITE", "NETWORK", "SECRET_READ", "SUBPROCESS"])
def test_an_honest_skill_fails_under_any_other_class(side_effect: str) -> None:
    skill = (FIXTURES / f"{FIXTURE_PREFIX[side_effect]}_skill.py").read_text()
    for other, spec in SPECS.items():
        if other != side_effect:
            findings = scan_source(skill, filename=spec.skill_path, spec=spec)
            assert findings, f"a {side_effect} skill passed as {other}"
            assert all(other in finding.message for finding in findings)


@pytest.mark.parametrize(
    "source",
    [
        "import re\nPATTERN = re.compile(r'a+')\n",
        "import os\nPATH = os.path.join('a', 'b')\n",
        "import os.path\nPATH = os.path.join('a', 'b')\n",
        "import json\nDATA = json.loads('{}')\n",
        "from os import path\nX = path.basename('a/b')\n",
        "TEXT = 'a-b'.replace('-', ' ')\n",
        "from pathlib import Path\nTEXT = Path('a').read_text()\n",
        "with open('a.txt', encoding='utf-8') as f:\n    f.read()\n",
        "with open('a.txt', 'rb') as f:\n    f.read()\n",
        "class A:\n    def __init__(self) -> None:\n        super().__init__()\n",
        "NAME = type(1).__name__\n",
        "MESSAGE = f'{1 + 1} items'\n",
        "import datetime\nNOW = datetime.datetime.now\n",
        "import urllib.parse\nQ = urllib.parse.quote('a b')\n",
        "import shutil\nW = shutil.which('ls')\n",
        "from collections.abc import Mapping\nM: Mapping[str, int] = {}\n",
        "import operator\nG = operator.attrgetter('name')\n",
        "X = getattr(object(), 'name', None)\n",
        "from kavi import skill\nfrom kavi.side_effects import SideEffect\n",
        "DOC = 'Run os.system(cmd) never.'\n",
        "NAME = type(x).__name__\nSAME = type(x) is int\nOK = isinstance(x, type)\n",
        "class A(dict):\n    def f(self):\n        return self._x, super().__len__()",
        "from collections import namedtuple\nP = namedtuple('P', 'x')\nQ = P(1)._replace(x=2)\n",
        "class A:\n    def __eq__(self, other):\n        return self.x == other.x\n",
        "import logging\nLOG = logging.getLogger(__name__)\nLOG.info('x %s', 1)\n",
        "MESSAGE = '{name}: {n}'.format(name='a', n=1)\n",
    ],
)
def test_everyday_code_passes_read_only(source: str) -> None:
    assert scan(source) == []


# -- evasion attempts fail with the right rule on the right line -----------------------------------

# (id, side-effect class, rule that must fire, its line, source)
# fmt: off
EVASIONS: list[tuple[str, str, str, int, str]] = [
    ("alias", "READ_ONLY", "subprocess", 2, "import os as o\no.system('ls')"),
    ("from-import-as", "READ_ONLY", "subprocess", 1, "from os import system as s\ns('ls')"),
    ("from-import-as-use", "READ_ONLY", "subprocess", 2, "from os import system as s\ns('ls')"),
    ("star-import", "READ_ONLY", "forbidden-import", 1, "from subprocess import *\nrun(['ls'])"),
    ("star-import-effect", "READ_ONLY", "subprocess", 1, "from subprocess import *"),
    ("rebinding", "READ_ONLY", "subprocess", 2, "import os\nx = os.system\nx('ls')"),
    ("dunder-import", "READ_ONLY", "dynamic-import", 1, "m = __import__('o' + 's')"),
    ("importlib", "READ_ONLY", "dynamic-import", 2,
     "import importlib\nimportlib.import_module('os')"),
    ("importlib-from", "READ_ONLY", "dynamic-import", 1,
     "from importlib import import_module as im"),
    ("getattr-concat", "READ_ONLY", "getattr-string", 2,
     "import os\ngetattr(os, 'sys' + 'tem')('ls')"),
    ("getattr-module", "READ_ONLY", "getattr-string", 2, "import os\ngetattr(os, 'system')('ls')"),
    ("getattr-module-effect", "READ_ONLY", "subprocess", 2, "import os\ngetattr(os, 'system')"),
    ("getattr-as-value", "READ_ONLY", "getattr-string", 1, "g = getattr\ng(object(), 'x')"),
    ("hasattr-non-literal", "READ_ONLY", "getattr-string", 2, "n = 'x'\nhasattr(object(), n)"),
    ("setattr-dunder", "READ_ONLY", "dunder-access", 1, "setattr(x, '__class__', int)"),
    ("builtins-eval", "READ_ONLY", "eval-exec", 2, "import builtins\nbuiltins.eval('1')"),
    ("enum-bltns", "READ_ONLY", "eval-exec", 2, "import enum\nenum.bltns.eval('1')"),
    ("exec-string", "READ_ONLY", "eval-exec", 1, "exec('import os')"),
    ("compile-builtin", "READ_ONLY", "eval-exec", 1, "c = compile('1', 'f', 'eval')"),
    ("lambda-eval", "READ_ONLY", "eval-exec", 1, "f = lambda s: eval(s)"),
    ("decorator-exec", "READ_ONLY", "eval-exec", 1, "@exec\ndef f():\n    pass"),
    ("map-exec", "READ_ONLY", "eval-exec", 1, "list(map(exec, ['1']))"),
    ("ctypes", "READ_ONLY", "ctypes", 1, "import ctypes\nctypes.CDLL(None)"),
    ("pickle", "READ_ONLY", "pickle", 1, "import pickle\npickle.loads(b'')"),
    ("marshal", "READ_ONLY", "pickle", 1, "from marshal import loads"),
    ("os-popen", "READ_ONLY", "subprocess", 2, "import os\nos.popen('ls')"),
    ("os-exec", "SUBPROCESS", "subprocess", 2, "import os\nos.execv('/bin/sh', ['sh'])"),
    ("os-fork", "SUBPROCESS", "process-control", 2, "import os\nos.fork()"),
    ("threading", "READ_ONLY", "process-control", 1, "import threading"),
    ("dunder-walk", "READ_ONLY", "dunder-access", 1, "x = ().__class__.__base__.__subclasses__()"),
    ("print-self", "READ_ONLY", "dunder-access", 1, "b = print.__self__"),
    ("builtins-name", "READ_ONLY", "dunder-access", 1, "b = __builtins__"),
    ("sys-modules", "READ_ONLY", "dynamic-import", 2, "import sys\nsys.modules['os'].system('ls')"),
    ("sys-getframe", "READ_ONLY", "introspection", 2, "import sys\nf = sys._getframe()"),
    ("globals", "READ_ONLY", "introspection", 1, "g = globals()['__builtins__']"),
    ("frame-walk", "READ_ONLY", "introspection", 2,
     "g = (i for i in [1])\nx = g.gi_frame.f_globals"),
    ("inspect", "READ_ONLY", "introspection", 1, "import inspect"),
    ("from-os-environ", "READ_ONLY", "env-read", 1, "from os import environ\nt = environ['HOME']"),
    ("getenv", "FILE_WRITE", "env-read", 2, "import os\nt = os.getenv('API_TOKEN')"),
    ("expandvars", "READ_ONLY", "env-read", 2, "import os\nt = os.path.expandvars('$API_TOKEN')"),
    ("walrus-environ", "READ_ONLY", "env-read", 2, "import os\nif (e := os.environ):\n    pass"),
    ("fstring-environ", "READ_ONLY", "env-read", 2, 'import os\nx = f"{os.environ[\'T\']}"'),
    ("class-body-env", "READ_ONLY", "env-read", 3, "import os\nclass C:\n    x = os.getenv('T')"),
    ("pathlib-write", "READ_ONLY", "file-write", 2,
     "from pathlib import Path\nPath('x').write_text('y')"),
    ("pathlib-open-w", "READ_ONLY", "file-write", 2,
     "from pathlib import Path\nPath('x').open('w')"),
    ("pathlib-unbound", "READ_ONLY", "file-write", 2, "import pathlib\npathlib.Path.touch(p)"),
    ("path-replace", "READ_ONLY", "file-write", 2,
     "from pathlib import Path\nPath('x').replace('y')"),
    ("open-write", "SECRET_READ", "file-write", 1, "open('x', 'w')"),
    ("open-mode-var", "READ_ONLY", "file-write", 2, "m = 'w'\nopen('x', m)"),
    ("open-as-value", "READ_ONLY", "file-write", 1, "f = open\nf('x', 'w')"),
    ("io-open-append", "READ_ONLY", "file-write", 2, "import io\nio.open('x', mode='a')"),
    ("os-remove", "NETWORK", "file-write", 2, "import os\nos.remove('x')"),
    ("shutil-rmtree", "READ_ONLY", "file-write", 2, "import shutil\nshutil.rmtree('x')"),
    ("tempfile", "READ_ONLY", "file-write", 1, "import tempfile"),
    ("proc-environ", "FILE_WRITE", "device-file", 1, "t = open('/proc/self/environ').read()"),
    ("subprocess-ro", "READ_ONLY", "subprocess", 1, "import subprocess\nsubprocess.run(['ls'])"),
    ("subprocess-network", "NETWORK", "subprocess", 1, "import subprocess"),
    ("asyncio-subprocess", "NETWORK", "subprocess", 2,
     "import asyncio\nasyncio.create_subprocess_exec('ls')"),
    ("loop-subprocess", "NETWORK", "subprocess", 2,
     "async def f(loop):\n    await loop.subprocess_exec(p, 'ls')"),
    ("urllib-request", "READ_ONLY", "network", 1,
     "import urllib.request\nurllib.request.urlopen('http://x')"),
    ("socket", "SUBPROCESS", "network", 1, "import socket"),
    ("http-client", "SECRET_READ", "network", 1, "from http.client import HTTPConnection"),
    ("nested-chain", "READ_ONLY", "subprocess", 2, "import os.path\nos.path.os.system('ls')"),
    ("reroot-shutil", "READ_ONLY", "subprocess", 2, "import shutil\nshutil.os.system('ls')"),
    ("private-member", "READ_ONLY", "private-access", 2, "import random\nrandom._os.system('ls')"),
    ("module-value", "READ_ONLY", "module-value", 4,
     "import os\ndef f(m):\n    return m\nf(os).system('ls')"),
    ("unknown-receiver", "READ_ONLY", "subprocess", 2, "def f(m):\n    return m.os.system('ls')"),
    ("format-dunder", "READ_ONLY", "format-string", 1, "s = '{0.__init__.__globals__}'.format(f)"),
    ("format-non-literal", "READ_ONLY", "format-string", 2, "t = '{0}'\ns = t.format(1)"),
    ("match-class", "READ_ONLY", "dunder-access", 2,
     "match 1:\n    case int(__class__=c):\n        pass"),
    ("string-annotation", "READ_ONLY", "dynamic-import", 1,
     'x: "__import__(\'os\').system(\'ls\')" = 1'),
    ("comprehension", "READ_ONLY", "subprocess", 2,
     "import os\nr = [os.system(c) for c in ['ls']]"),
    ("attrgetter-dunder", "READ_ONLY", "dunder-access", 2,
     "import operator\ng = operator.attrgetter('__globals__')"),
    ("pydantic-importstring", "READ_ONLY", "dynamic-import", 1,
     "from pydantic import ImportString"),
    ("kavi-internal", "READ_ONLY", "kavi-internal", 1, "from kavi.ledger import db"),
    ("kavi-from", "READ_ONLY", "kavi-internal", 1, "from kavi import spec"),
    ("unknown-module", "READ_ONLY", "forbidden-import", 1, "import platform"),
    ("relative-import", "READ_ONLY", "forbidden-import", 1, "from . import helper"),
    ("breakpoint", "READ_ONLY", "dynamic-import", 1, "breakpoint()"),
    ("dotenv", "NETWORK", "env-read", 1, "import dotenv"),
    ("annotation-name", "READ_ONLY", "annotation", 4,
     "from pydantic import BaseModel\nT = '__imp' + 'ort__(1)'\nclass M(BaseModel):\n    x: T"),
    ("annotation-concat", "READ_ONLY", "annotation", 3,
     "from pydantic import BaseModel\nclass M(BaseModel):\n    x: '__imp' + 'ort__(1)'"),
    ("annotation-parameter", "READ_ONLY", "annotation", 4,
     "from pydantic import BaseModel\ndef f(T):\n    class M(BaseModel):\n        x: T"),
    ("annotation-docstring", "READ_ONLY", "annotation", 3,
     "from pydantic import BaseModel\nclass M(BaseModel):\n    x: __doc__"),
    ("annotation-class-attribute", "READ_ONLY", "annotation", 5,
     "from pydantic import BaseModel\nclass A:\n    B = str(1)\nclass M(BaseModel):\n    x: A.B"),
    ("generic-base", "READ_ONLY", "annotation", 3,
     "from pydantic import RootModel\nT = ''.join(['a'])\nclass M(RootModel[T]):\n    pass"),
    ("type-adapter", "READ_ONLY", "annotation", 3,
     "from pydantic import TypeAdapter\nT = str(1)\nTypeAdapter(T)"),
    ("validate-call", "READ_ONLY", "annotation", 4,
     "from pydantic import validate_call\nT = str(1)\n@validate_call\ndef f(x: T): pass"),
    ("model-rebuild", "READ_ONLY", "annotation", 1, "M.model_rebuild(_types_namespace={'T': t})"),
    ("create-model", "READ_ONLY", "annotation", 1, "from pydantic import create_model"),
    ("coding-utf7", "READ_ONLY", "source-encoding", 1, "# coding: utf-7\nx = 1 #+AAo-import os"),
    ("module-patch", "READ_ONLY", "module-patch", 2, "import json\njson.loads = eval_like"),
    ("module-del", "READ_ONLY", "module-patch", 2, "import json\ndel json.loads"),
    ("methodcaller-format", "READ_ONLY", "format-string", 2,
     "import operator\nf = operator.methodcaller('format', obj)"),
    ("format-as-value", "READ_ONLY", "format-string", 1, "f = str.format"),
    ("cli-entry-point", "READ_ONLY", "forbidden-member", 2, "import gzip\ngzip.main()"),
    ("logging-formatter", "READ_ONLY", "attribute-by-data", 2,
     "import logging\nf = logging.Formatter('{x}', style='{')"),
    ("type-rebuilds-fileio", "READ_ONLY", "introspection", 2,
     "f = open('x')\ntype(f.buffer.raw)('y', 'w')"),
    ("type-as-value", "READ_ONLY", "introspection", 1, "m = list(map(type, xs))"),
    ("init-reopens-file", "READ_ONLY", "dunder-access", 2,
     "f = open('x')\nf.buffer.raw.__init__('y', 'w')"),
    ("private-of-object", "READ_ONLY", "private-access", 3,
     "import logging\nh = logging.getLogger().handlers[0]\ns = h.formatter._style"),
    ("help-pager", "READ_ONLY", "subprocess", 1, "help(1)"),
    ("getattr-gateway", "READ_ONLY", "module-value", 1, "x = getattr(obj, 'os')"),
    ("attrgetter-dotted", "READ_ONLY", "subprocess", 2,
     "import operator\nf = operator.attrgetter('os.system')"),
    ("class-pattern-gateway", "READ_ONLY", "subprocess", 3,
     "match x:\n    case C(os=o):\n        o.system('x')"),
    ("posix-alias", "READ_ONLY", "env-read", 2, "import posix\nt = posix.environ"),
    ("open-kwargs", "READ_ONLY", "file-write", 2, "kw = {'mode': 'w'}\nopen('x', **kw)"),
    ("partial-open", "READ_ONLY", "file-write", 2,
     "import functools\nw = functools.partial(open, mode='w')"),
    ("gzip-write", "READ_ONLY", "file-write", 2, "import gzip\ngzip.open('x', 'wb')"),
    ("from-effect-module", "READ_ONLY", "subprocess", 1, "from subprocess import os"),
    ("opener-internals", "READ_ONLY", "file-write", 2,
     "import io\nio.FileIO.__init__(open('x').buffer.raw, 'y', 'w')"),
    ("super-foreign", "READ_ONLY", "dunder-access", 1, "super(A, raw).__init__('y', 'w')"),
    ("computed-field", "READ_ONLY", "annotation", 3,
     "from pydantic import computed_field\nT = str(1)\nf = computed_field(return_type=T)"),
    ("namedtuple-functional", "READ_ONLY", "annotation", 3,
     "from typing import NamedTuple\nT = str(1)\nP = NamedTuple('P', [('a', T)])"),
    ("typeddict-functional", "READ_ONLY", "annotation", 3,
     "from typing import TypedDict\nT = str(1)\nD = TypedDict('D', {'a': T})"),
    ("pydantic-mypy", "READ_ONLY", "forbidden-import", 1, "import pydantic.mypy"),
    ("shell-true", "SUBPROCESS", "subprocess", 2,
     "import subprocess\nsubprocess.run('echo hi', shell=True)"),
    ("undeclared-program", "SUBPROCESS", "subprocess", 2,
     "import subprocess\nsubprocess.run(['/bin/rm', '-rf', 'x'])"),
    ("undeclared-host", "NETWORK", "network", 2,
     "import urllib.request\nurllib.request.urlopen('https://evil.example.org/x')"),
    ("write-outside-root", "FILE_WRITE", "file-write", 1, "open('/etc/passwd', 'a')"),
    ("write-dotdot", "FILE_WRITE", "file-write", 1, "open('notes/../../x', 'w')"),
    ("path-outside-root", "FILE_WRITE", "file-write", 2,
     "from pathlib import Path\n(Path('out') / 'a.md').write_text('x')"),
    ("shutil-outside-root", "FILE_WRITE", "file-write", 2,
     "import shutil\nshutil.copy('notes/a', '/tmp/b')"),
    ("undeclared-secret", "SECRET_READ", "env-read", 2, "import os\nt = os.environ['AWS_KEY']"),
    ("whole-environment", "SECRET_READ", "env-read", 2, "import os\nenv = dict(os.environ)"),
    ("computed-secret", "SECRET_READ", "env-read", 2, "import os\nt = os.getenv(name)"),
    ("foreign-self-init", "READ_ONLY", "dunder-access", 2,
     "def reopen(self):\n    self.__init__('y', 'w')\nreopen(open('x').buffer.raw)"),
    ("foreign-self-type", "READ_ONLY", "introspection", 2,
     "def clone(self):\n    return type(self)('y', 'w')\nclone(open('x').buffer.raw)"),
    ("smuggled-expandvars", "READ_ONLY", "env-read", 2,
     "def flavour(self):\n    return self._flavour.expandvars('$API_TOKEN')"),
    ("unicode-eval", "READ_ONLY", "eval-exec", 1, "\uff45\uff56\uff41\uff4c('1')"),
    ("own-name-member", "READ_ONLY", "network", 2, "import socket as s\nc = s.socket()"),
    ("own-name-member-from", "FILE_WRITE", "network", 1, "from socket import socket"),
]
# fmt: on


@pytest.mark.parametrize(
    ("side_effect", "rule", "line", "source"),
    [case[1:] for case in EVASIONS],
    ids=[case[0] for case in EVASIONS],
)
def test_evasion_is_caught(side_effect: str, rule: str, line: int, source: str) -> None:
    findings = scan(source, side_effect)
    assert (rule, line) in hits(findings), [f.message for f in findings]


def test_every_message_names_the_class_and_ends_with_the_fix() -> None:
    for _, side_effect, _, _, source in EVASIONS:
        for finding in scan(source, side_effect):
            assert side_effect in finding.message, finding.message
            assert finding.message.endswith(")"), finding.message
            assert finding.message.startswith(f"line {finding.line}: ")


def test_there_are_at_least_forty_distinct_evasions() -> None:
    assert len({case[0] for case in EVASIONS}) == len(EVASIONS) >= 40


@pytest.mark.parametrize(
    ("source", "rule", "line"),
    [
        (
            "def test_x(monkeypatch):\n    monkeypatch.setattr('os.system', print)",
            "dynamic-import",
            2,
        ),
        ("import pytest\npytest.importorskip('os')", "dynamic-import", 2),
        ("def test_x(tmp_path):\n    (tmp_path / 'a').write_text('x')", "file-write", 2),
        ("def test_x(monkeypatch):\n    monkeypatch.setenv('API_TOKEN', 'x')", "env-read", 2),
        ("from skills.other_skill import Other", "forbidden-import", 1),
        ("def test_x(tmpdir):\n    tmpdir.join('a').write('x')", "file-write", 1),
        ("def test_x(pytester):\n    pytester.runpytest_subprocess()", "subprocess", 1),
        ("pytest_plugins = ['pytester']", "dynamic-import", 1),
        ("import pytest\npytest.console_main()", "forbidden-member", 2),
        ("def test_x(request):\n    t = request.getfixturevalue('tmpdir')", "file-write", 2),
        (
            "import json\ndef test_x(monkeypatch):\n    monkeypatch.setattr(json, 'x', 'p()')",
            "module-patch",
            3,
        ),
        ("from skills.word_count import Input\nclass M(Input):\n    y: Input.zz", "annotation", 3),
        (
            "def test_x(request):\n    request.config.pluginmanager.import_plugin('x')",
            "dynamic-import",
            2,
        ),
    ],
)
def test_test_files_obey_the_skills_class(source: str, rule: str, line: int) -> None:
    assert (rule, line) in hits(scan(source, "READ_ONLY", test_file=True))


def test_a_skill_file_may_not_import_pytest() -> None:
    assert ("forbidden-import", 1) in hits(scan("import pytest"))


def test_message_names_the_effect_the_class_and_the_fix() -> None:
    (finding,) = [f for f in scan("import subprocess\n") if f.rule == "subprocess"]
    assert finding.message.startswith("line 1: import subprocess spawns a process")
    assert "READ_ONLY skills may not (declare SUBPROCESS)" in finding.message
    never = next(f for f in scan("import os\nos.system('x')") if f.rule == "subprocess")
    assert "no side-effect class allows it, READ_ONLY included" in never.message
    assert (never.filename, never.line, never.col) == ("skills/word_count.py", 2, 0)


def test_declared_programs_and_hosts_pass() -> None:
    assert scan("import subprocess\nsubprocess.run(['echo', 'hi'], check=True)", "SUBPROCESS") == []
    source = "import urllib.request\nurllib.request.urlopen('https://api.example.com/x')"
    assert scan(source, "NETWORK") == []


def test_declared_secrets_by_name_pass() -> None:
    source = "import os\na = os.environ['API_TOKEN']\nb = os.environ.get('API_TOKEN')\nc = os.getenv('API_TOKEN', '')\n"
    assert scan(source, "SECRET_READ") == []


def test_literal_writes_under_the_write_root_pass() -> None:
    source = (
        "from pathlib import Path\n"
        "open('notes/a.md', 'w')\n"
        "Path('notes', 'b.md').write_text('x')\n"
        "(Path('notes') / 'c.md').open('a')\n"
    )
    assert scan(source, "FILE_WRITE") == []


def test_the_declared_class_allows_its_own_effect_only() -> None:
    source = "import os\nt = os.environ['API_TOKEN']\n"
    assert scan(source, "SECRET_READ") == []
    assert {f.rule for f in scan(source, "NETWORK")} == {"env-read"}


HONEST_ANNOTATIONS = """
from __future__ import annotations

import datetime
from typing import Annotated, Callable, ClassVar, Literal, NamedTuple, Optional, TypedDict, TypeVar

from pydantic import BaseModel, Field, RootModel, TypeAdapter

T = TypeVar("T", bound="BaseModel")
Vector = list[float]


class Input(BaseModel):
    a: Annotated[int, Field(gt=0, description="x.y")]
    b: Literal["a", "b.c()"]
    c: Optional[str] = None
    d: list[int] | None = None
    e: Callable[[int, str], bool] | None = None
    f: ClassVar[str] = "x"
    g: tuple[int, ...] = ()
    h: Vector = []
    i: "Input | None" = None
    j: datetime.datetime | None = None


class Inputs(RootModel[list[Input]]):
    pass


ADAPTER = TypeAdapter(list[Input])
Point = NamedTuple("Point", [("x", int), ("y", float)])
Movie = TypedDict("Movie", {"title": str, "year": int})


def first(items: list[T], *rest: str, **options: object) -> T | None:
    return items[0] if items else None
"""


def test_honest_annotations_pass() -> None:
    assert scan(HONEST_ANNOTATIONS) == []


def test_a_test_file_may_annotate_with_the_skills_types_only(tmp_path: Path) -> None:
    skill = "from pydantic import BaseModel\nT = str(1)\nclass Input(BaseModel):\n    x: int\n"
    tests = (
        "from skills.word_count import Input, T\n"
        "def make() -> Input:\n"
        "    return Input(x=1)\n"
        "def bad() -> T:\n"
        "    return 1\n"
    )
    result = PolicyGate().run(make_context(tmp_path, skill, tests))
    assert result.status is GateStatus.FAIL
    assert [(f["rule"], f["line"]) for f in result.facts["findings"]] == [("annotation", 4)]


def test_scanning_real_code_never_raises() -> None:
    """The standard library's json and email packages exercise most of the grammar."""
    import email
    import json

    for package in (json, email):
        for path in sorted(Path(str(package.__file__)).parent.glob("*.py")):
            findings = scan_source(path.read_text(), filename=path.name, spec=SPECS["READ_ONLY"])
            assert all(isinstance(f, Finding) for f in findings)


def test_deep_nesting_is_a_finding_not_a_crash() -> None:
    (finding,) = scan("x = a" + ".b" * 200_000)
    assert finding.rule == "syntax-error"


def test_a_lone_carriage_return_ends_a_comment_as_python_reads_it() -> None:
    assert ("subprocess", 2) in hits(scan("x = 1  # note\rimport subprocess\r"))


def test_syntax_error_is_a_finding() -> None:
    (finding,) = scan("def broken(:\n")
    assert finding.rule == "syntax-error"
    assert finding.line == 1


def test_every_module_reachable_from_an_allowed_module_is_judged() -> None:
    """An allowed module's module-valued attributes (``enum.bltns`` is builtins) must not be a way
    around the import rules: scanning ``M.attr.x`` fails whenever the real module is not allowed."""
    for key, rule in MODULE_RULES.items():
        if not isinstance(rule, Allow) or rule.members is not None or key.startswith("kavi"):
            continue
        try:
            module = importlib.import_module(key)
        except ImportError:
            continue
        for attr in dir(module):
            value = getattr(module, attr, None)
            if not isinstance(value, types.ModuleType) or attr.startswith("__"):
                continue
            real = classify(f"{value.__name__}.member", {})
            if isinstance(real, Allow) and real.members is None:
                continue
            findings = scan(f"import {key}\nx = {key}.{attr}.member\n")
            assert findings, f"{key}.{attr} reaches {value.__name__} unjudged"
            passed_around = scan(f"def f(m):\n    return m.{attr}.member\n")
            assert passed_around, f"m.{attr} (a module value) reaches {value.__name__} unjudged"


# -- the gate --------------------------------------------------------------------------------------


def make_context(tmp_path: Path, skill: str, tests: str, side_effect: str = "READ_ONLY") -> GateContext:
    spec = SPECS[side_effect]
    (tmp_path / "skills").mkdir()
    (tmp_path / spec.skill_path).write_text(skill, encoding="utf-8")
    (tmp_path / spec.test_path).write_text(tests, encoding="utf-8")
    return GateContext(spec=spec, sandbox=tmp_path, cache_dir=tmp_path / "cache")


def test_gate_passes_an_honest_candidate(tmp_path: Path) -> None:
    skill = (FIXTURES / "read_only_skill.py").read_text()
    tests = (FIXTURES / "read_only_tests.py").read_text()
    gate = PolicyGate()
    assert gate.applies_to(SPECS["READ_ONLY"])
    result = gate.run(make_context(tmp_path, skill, tests))
    assert result.status is GateStatus.PASS, result.report
    assert result.gate == "policy"
    assert "READ_ONLY" in result.summary


def test_gate_passes_a_realistic_skill_with_pydantic_validators_and_fixtures(
    tmp_path: Path,
) -> None:
    spec = make_spec(name="text_stats", description="text statistics", side_effect="READ_ONLY", io_schema=IO)
    (tmp_path / "skills").mkdir()
    (tmp_path / spec.skill_path).write_bytes((FIXTURES / "rich_read_only_skill.py").read_bytes())
    (tmp_path / spec.test_path).write_bytes((FIXTURES / "rich_read_only_tests.py").read_bytes())
    context = GateContext(spec=spec, sandbox=tmp_path, cache_dir=tmp_path / "cache")
    result = PolicyGate().run(context)
    assert result.status is GateStatus.PASS, result.report
    assert result.duration_s < 2.0


def test_gate_fails_on_a_syntax_error_without_raising(tmp_path: Path) -> None:
    result = PolicyGate().run(make_context(tmp_path, "def broken(:\n", "x = 1\n"))
    assert result.status is GateStatus.FAIL
    assert result.facts["findings"][0]["rule"] == "syntax-error"
    assert "skills/word_count.py:1:" in result.report


def test_gate_reports_findings_from_the_test_file(tmp_path: Path) -> None:
    skill = (FIXTURES / "read_only_skill.py").read_text()
    tests = "import os\n\ndef test_x():\n    os.system('rm -rf notes')\n"
    result = PolicyGate().run(make_context(tmp_path, skill, tests))
    assert result.status is GateStatus.FAIL
    assert result.facts["findings"] == [
        {
            "rule": "subprocess",
            "message": result.facts["findings"][0]["message"],
            "filename": "skills/test_word_count.py",
            "line": 4,
            "col": 4,
        }
    ]
    assert result.report.startswith("skills/test_word_count.py:4:4 subprocess line 4: os.system")


def test_gate_fails_when_the_test_file_is_missing(tmp_path: Path) -> None:
    context = make_context(tmp_path, "x = 1\n", "x = 1\n")
    context.test_file.unlink()
    result = PolicyGate().run(context)
    assert result.status is GateStatus.FAIL
    assert result.facts["findings"][0]["rule"] == "missing-file"


def test_scanning_is_fast() -> None:
    source = (FIXTURES / "read_only_skill.py").read_text() * 20
    import time

    start = time.perf_counter()
    scan_source(source, filename="skills/word_count.py", spec=SPECS["READ_ONLY"])
    assert time.perf_counter() - start < 2.0
    assert sys.getrecursionlimit() > 0


# -- gadgets: library features that run code the scan cannot see (issues 9 §3 and 10 §1) ----------

# (id, family, rule that must fire, its line, source); every family has at least two variants.
# fmt: off
GADGETS: list[tuple[str, str, str, int, str]] = [
    ("from-attributes", "pydantic attributes", "attribute-by-data", 3,
     "from pydantic import BaseModel, ConfigDict, Field\nclass M(BaseModel):\n"
     "    model_config = ConfigDict(from_attributes=True)\n"
     "    x: int = Field(validation_alias='a')\n"),
    ("alias-path-dunder", "pydantic attributes", "attribute-by-data", 2,
     "from pydantic import AliasPath, Field\n"
     "f = Field(validation_alias=AliasPath('__init__', '__globals__', '__builtins__'))\n"),
    ("alias-generator-no-dunder-string", "pydantic attributes", "attribute-by-data", 5,
     "from pydantic import BaseModel, ConfigDict\ndef gen(name: str) -> str:\n    return name[::-1]\n"
     "class M(BaseModel):\n    model_config = ConfigDict(alias_generator=gen)\n"),
    ("alias-choices", "pydantic attributes", "attribute-by-data", 2,
     "from pydantic import AliasChoices, Field\nf = Field(validation_alias=AliasChoices('a', 'b'))\n"),
    ("validate-from-attributes", "pydantic attributes", "attribute-by-data", 1,
     "m = M.model_validate(obj, from_attributes=True)\n"),
    ("config-dict-literal", "pydantic attributes", "attribute-by-data", 3,
     "from pydantic import BaseModel\nclass M(BaseModel):\n    model_config = {'from_attributes': True}\n"),
    ("class-config-orm-mode", "pydantic attributes", "attribute-by-data", 4,
     "from pydantic import BaseModel\nclass M(BaseModel):\n    class Config:\n        orm_mode = True\n"),
    ("config-kwargs", "pydantic attributes", "attribute-by-data", 2,
     "from pydantic import ConfigDict\nc = ConfigDict(**settings)\n"),
    ("class-keyword", "pydantic attributes", "attribute-by-data", 2,
     "from pydantic import BaseModel\nclass M(BaseModel, from_attributes=True):\n    x: int\n"),
    ("config-computed-key", "pydantic attributes", "attribute-by-data", 5,
     "from pydantic import BaseModel, ConfigDict\ncfg = ConfigDict()\ncfg['from_' + 'attributes'] = True\n"
     "class M(BaseModel):\n    model_config = cfg\n"),
    ("config-update", "pydantic attributes", "attribute-by-data", 4,
     "from pydantic import BaseModel\nclass M(BaseModel):\n    model_config = {}\n"
     "M.model_config.update({k: True})\n"),
    ("with-config-built", "pydantic attributes", "attribute-by-data", 2,
     "from pydantic import with_config\n@with_config(dict([(k, True)]))\nclass M:\n    pass\n"),
    ("dataclass-config", "pydantic attributes", "attribute-by-data", 2,
     "from pydantic.dataclasses import dataclass\n@dataclass(config=settings)\nclass M:\n    pass\n"),
    ("private-alias", "pydantic attributes", "attribute-by-data", 2,
     "from pydantic import Field\nf = Field(alias='__class__', serialization_alias='x')\n"),
    ("format-fields", "format templates", "format-string", 1, "s = '{0.__init__.__globals__}'.format(f)\n"),
    ("format-map-fields", "format templates", "format-string", 1, "s = '{x.__class__}'.format_map(d)\n"),
    ("format-unbound", "format templates", "format-string", 1, "s = str.format(template, obj)\n"),
    ("string-formatter", "format templates", "attribute-by-data", 2,
     "import string\ns = string.Formatter().vformat(t, (obj,), {})\n"),
    ("attrgetter-computed", "getattr by name", "getattr-string", 2,
     "import operator\ng = operator.attrgetter(name)\n"),
    ("methodcaller-computed", "getattr by name", "getattr-string", 2,
     "from operator import methodcaller\nm = methodcaller(name)\n"),
    ("getattr-reduce", "getattr by name", "getattr-string", 2,
     "import functools\nx = functools.reduce(getattr, names, obj)\n"),
    ("logging-formatter", "logging templates", "attribute-by-data", 2,
     "import logging\nf = logging.Formatter('{x.__class__}', style='{')\n"),
    ("logging-style", "logging templates", "attribute-by-data", 1,
     "from logging import StrFormatStyle\n"),
    ("logging-basic-config", "logging templates", "attribute-by-data", 2,
     "import logging\nlogging.basicConfig(format='{msg.__init__.__globals__}', style='{')\n"),
    ("logging-record-factory", "logging templates", "attribute-by-data", 2,
     "import logging\nlogging.setLogRecordFactory(f)\n"),
    ("pydantic-internal-import", "private submodules", "private-access", 1,
     "from pydantic._internal._validators import import_string\n"),
    ("pydantic-internal-module", "private submodules", "private-access", 1, "import pydantic._internal\n"),
    ("json-private-submodule", "private submodules", "private-access", 1, "from json import _default_decoder\n"),
    ("validate-call", "run-time annotations", "annotation", 1, "from pydantic import validate_call\n"),
    ("future-validate-call", "run-time annotations", "annotation", 3,
     "from __future__ import annotations\nimport pydantic\n@pydantic.validate_call\ndef f(x: int) -> int:\n"
     "    return x\n"),
    ("singledispatch-register", "run-time annotations", "annotation", 5,
     "import functools\n@functools.singledispatch\ndef f(x: object) -> int:\n    return 1\n"
     "@f.register\ndef _(x: 'int') -> int:\n    return 2\n"),
    ("singledispatch-register-call", "run-time annotations", "annotation", 7,
     "import functools\n@functools.singledispatch\ndef f(x: object) -> int:\n    return 1\n"
     "def impl(x: 'int') -> int:\n    return 2\nf.register(impl)\n"),
    ("get-type-hints", "run-time annotations", "annotation", 2, "import typing\nh = typing.get_type_hints(f)\n"),
    ("inspect-annotations", "run-time annotations", "introspection", 1,
     "from inspect import get_annotations\n"),
    ("annotations-write", "run-time annotations", "dunder-access", 1,
     "f.__annotations__['x'] = '__imp' + 'ort__(1)'\n"),
    ("class-annotations-write", "run-time annotations", "dunder-access", 3,
     "from pydantic import BaseModel\nclass M(BaseModel):\n    __annotations__['x'] = t\n"),
    ("global-enum", "enum globals", "module-patch", 2,
     "import enum\n@enum.global_enum\nclass E(enum.Enum):\n    A = 1\n"),
    ("global-enum-from", "enum globals", "module-patch", 1, "from enum import global_enum as g\n"),
    ("enum-claims-qualname", "enum globals", "dunder-access", 2,
     "class E:\n    __qualname__ = 'Other'\nE.__module__ = 'kavi.runtime.audit'\n"),
    ("enum-claims-module", "enum globals", "dunder-access", 3,
     "import enum\nclass E(enum.Enum):\n    __module__ = 'kavi.runtime.audit'\n    A = 1\n"),
    ("namedtuple-computed", "generated fields", "generated-fields", 2,
     "from collections import namedtuple\nP = namedtuple('P', names)\n"),
    ("namedtuple-module", "generated fields", "generated-fields", 2,
     "import collections\nP = collections.namedtuple('P', 'a b', module='os')\n"),
    ("enum-functional", "generated fields", "generated-fields", 2, "import enum\nE = enum.Enum('E', data)\n"),
    ("own-enum-functional", "generated fields", "generated-fields", 4,
     "from enum import Enum\nclass Base(Enum):\n    pass\nE = Base('E', data)\n"),
    ("typeddict-computed", "generated fields", "generated-fields", 2,
     "from typing import TypedDict\nD = TypedDict('D', fields)\n"),
    ("make-dataclass", "generated fields", "annotation", 1, "from dataclasses import make_dataclass\n"),
    ("codecs-register", "registries", "registry", 2, "import codecs\ncodecs.register(search)\n"),
    ("codecs-register-error", "registries", "registry", 1, "from codecs import register_error\n"),
    ("atexit", "registries", "registry", 1, "import atexit\n"),
    ("sys-excepthook", "registries", "registry", 2, "import sys\nsys.excepthook = hook\n"),
    ("weakref-finalize", "registries", "registry", 1, "from weakref import finalize\n"),
    ("copyreg", "registries", "registry", 1, "import copyreg\n"),
    ("finalizer", "registries", "registry", 2, "class A:\n    def __del__(self) -> None:\n        pass\n"),
]
# (id, rule, line, test-file source)
PYTEST_GADGETS: list[tuple[str, str, int, str]] = [
    ("request-config", "pytest-internals", 2,
     "def test_x(request):\n    request.config.pluginmanager.register(Plugin())\n"),
    ("pytestconfig-fixture", "pytest-internals", 1, "def test_x(pytestconfig):\n    assert pytestconfig\n"),
    ("session-testsfailed", "pytest-internals", 2, "def test_x(request):\n    request.session.testsfailed = 0\n"),
    ("node-session", "pytest-internals", 2, "def test_x(request):\n    s = request.node.session\n"),
    ("getattr-session", "pytest-internals", 2, "def test_x(request):\n    s = getattr(request, 'session')\n"),
    ("pytest-plugins", "dynamic-import", 1, "pytest_plugins = ['evil']\n"),
    ("pytest-plugins-import-alias", "pytest-internals", 1, "from word_count import PLUGINS as pytest_plugins\n"),
    ("pytest-plugins-string", "pytest-internals", 1, "NAME = 'pytest_' + 'plugins' if x else 'pytest_plugins'\n"),
    ("pytest-plugins-match-star", "pytest-internals", 3,
     "match ['evil']:\n    case [*rest]:\n        pytest_plugins = rest\n"),
    ("pytest-plugins-match-capture", "pytest-internals", 2, "match ['evil']:\n    case pytest_plugins:\n"
     "        pass\n"),
    ("pytest-plugins-class", "pytest-internals", 1, "class pytest_plugins(list):\n    pass\n"),
    ("hook-function", "pytest-internals", 1, "def pytest_pyfunc_call(pyfuncitem):\n    return True\n"),
    ("hook-in-class", "pytest-internals", 2,
     "class Plugin:\n    def pytest_runtest_makereport(self, item, call):\n        pass\n"),
    ("pytest-main", "dynamic-import", 3, "import pytest\ndef test_x():\n    pytest.main(['-p', 'evil'])\n"),
    ("underscore-pytest", "forbidden-import", 1, "from _pytest.config import Config\n"),
    ("underscore-pytest-module", "forbidden-import", 1, "import _pytest\n"),
    ("patch-module-with-foreign-value", "module-value", 3,
     "import socket\ndef test_x(monkeypatch):\n    monkeypatch.setattr(socket, 'socket', print)\n"),
    ("module-to-other-patcher", "module-value", 3,
     "import socket\ndef test_x(patcher):\n    patcher.setattr(socket, 'socket', Fake)\nclass Fake:\n    pass\n"),
]
# (id, rule, line, source bytes)
SUPPRESSIONS: list[tuple[str, str, int, str]] = [
    ("ruff-file", "suppression", 1, "# ruff: noqa\nX = 1\n"),
    ("ruff-file-codes", "suppression", 2, "X = 1\n# ruff: noqa: S\n"),
    ("flake8-file", "suppression", 1, "# flake8: noqa\nX = 1\n"),
    ("mypy-ignore-errors", "suppression", 1, "# mypy: ignore-errors\nX = 1\n"),
    ("mypy-disable-codes", "suppression", 2, '"""Doc."""\n# mypy: disable-error-code="no-untyped-def"\n'),
    ("type-ignore-top", "suppression", 1, "# type: ignore\nX = 1\n"),
    ("type-ignore-after-docstring", "suppression", 2, '"""Doc."""\n# type: ignore\nX = 1\n'),
    ("pyright", "suppression", 1, "# pyright: basic\nX = 1\n"),
    ("isort-skip", "suppression", 1, "# isort: skip_file\nX = 1\n"),
    ("after-text", "suppression", 1, "X = 1  # fine # ruff: noqa\n"),
    ("bare-noqa", "suppression", 1, "X = 1  # noqa\n"),
    ("noqa-unwaivable", "suppression", 2, "import subprocess\nsubprocess.run(cmd)  # noqa: S603\n"),
    ("noqa-mixed", "suppression", 1, "X = 1  # noqa: E501, S102\n"),
    ("bare-type-ignore", "suppression", 1, "X: int = 'a'  # type: ignore\n"),
    ("type-ignore-unwaivable", "suppression", 1, "X: int = 'a'  # type: ignore[assignment]\n"),
]
# fmt: on


@pytest.mark.parametrize(("rule", "line", "source"), [case[2:] for case in GADGETS], ids=[case[0] for case in GADGETS])
def test_gadget_is_refused(rule: str, line: int, source: str) -> None:
    for side_effect in ("READ_ONLY", "NETWORK"):  # no class allows any of them
        findings = scan(source, side_effect)
        assert (rule, line) in hits(findings), [f.message for f in findings]


def test_every_gadget_family_has_two_variants() -> None:
    families: dict[str, int] = {}
    for case in GADGETS:
        families[case[1]] = families.get(case[1], 0) + 1
    assert min(families.values()) >= 2, families


@pytest.mark.parametrize(
    ("rule", "line", "source"), [case[1:] for case in PYTEST_GADGETS], ids=[case[0] for case in PYTEST_GADGETS]
)
def test_pytest_internals_are_refused_in_test_files(rule: str, line: int, source: str) -> None:
    for side_effect in ("READ_ONLY", "NETWORK"):
        findings = scan(source, side_effect, test_file=True)
        assert (rule, line) in hits(findings), [f.message for f in findings]


@pytest.mark.parametrize(
    ("rule", "line", "source"), [case[1:] for case in SUPPRESSIONS], ids=[case[0] for case in SUPPRESSIONS]
)
def test_suppression_comments_are_refused(rule: str, line: int, source: str) -> None:
    for test_file in (False, True):
        findings = scan(source, test_file=test_file)
        assert (rule, line) in hits(findings), [f.message for f in findings]


@pytest.mark.parametrize(
    "source",
    [
        "X = 1  # noqa: E501\n",
        "X = 1  # noqa: E501 - an explanation after the code waives nothing more\n",
        "try:\n    X = 1\nexcept Exception:  # noqa: BLE001 - any failure is fine here\n    X = 0\n",
        "import random\nN = random.random()  # noqa: S311\n",
        "import json  # type: ignore[import-untyped]\n",
        "TEXT = '# ruff: noqa is only text here'\n",
        "# A comment about noqa-style waivers is not one.\nX = 1\n",
        "# -*- coding: utf-8 -*-\nX = 1\n",
    ],
)
def test_waivable_and_look_alike_comments_pass(source: str) -> None:
    assert scan(source) == []


def test_an_explained_waiver_still_refuses_a_code_that_is_not_waivable() -> None:
    findings = scan("import os  # noqa: S605 - E501 is waivable, S605 is not\n")
    assert [f.rule for f in findings if f.rule == "suppression"] == ["suppression"]


@pytest.mark.parametrize(
    "source",
    [
        b"# coding: utf-7\nX = 1 #+AAo-import os\n",
        b"#!/usr/bin/env python\x0c\n# -*- coding: utf-7 -*-\nX = 1 #+AAo-import os\n",
        b"\x0c# coding: utf-7\nX = 1 #+AAo-import os\n",
        b"# vim: set fileencoding=latin-1 :\nX = 1\n",
    ],
    ids=["utf-7-cookie", "form-feed-line-1", "form-feed-before-cookie", "vim-latin-1"],
)
def test_a_foreign_encoding_is_refused_as_python_finds_it(source: bytes) -> None:
    spec = SPECS["READ_ONLY"]
    findings = scan_source(source, filename=spec.skill_path, spec=spec)
    assert [f.rule for f in findings] == ["source-encoding"], findings


def test_the_scan_judges_the_code_python_decodes(tmp_path: Path) -> None:
    """Through the gate (bytes on disk): a form feed hides no line from the scan."""
    context = make_context(tmp_path, "X = 1\n", "def test_x():\n    pass\n")
    skill = tmp_path / SPECS["READ_ONLY"].skill_path
    skill.write_bytes(b"#!/usr/bin/env python\x0c\n# coding: utf-7\nX = 1 #+AAo-import os\n")
    result = PolicyGate().run(context)
    assert result.status is GateStatus.FAIL and "source-encoding" in result.summary


# Honest code that looks like a gadget: each passes (a gate that refuses re.compile is a bug too).
HONEST_LOOK_ALIKES = [
    "EMAIL = 'a@b.io'\nHOST = 'api.example.io'\n",
    "from pydantic import BaseModel, Field\nclass M(BaseModel):\n    x: int = Field(alias='count')\n"
    "    y: str = Field(alias='_id')\n",
    "from pydantic import BaseModel, ConfigDict\nclass M(BaseModel):\n    model_config = ConfigDict(frozen=True)\n",
    "import operator\nKEY = operator.attrgetter('name')\nCALL = operator.methodcaller('strip')\n",
    "MESSAGE = '{0.name}: {1}'.format(item, 2)\nOTHER = '{n}'.format_map({'n': 1})\n",
    "import string\nT = string.Template('$who').substitute(who='x')\n",
    "import logging\nLOG = logging.getLogger(__name__)\nLOG.info('%(n)s', {'n': 1})\n",
    "from collections import namedtuple\nP = namedtuple('P', ['x', 'y'])\nQ = namedtuple('Q', 'a b')\n",
    "import enum\nE = enum.Enum('E', 'A B')\nclass F(enum.Enum):\n    A = 1\nX = F(1)\n",
    "import functools\n@functools.singledispatch\ndef f(x: object) -> int:\n    return 1\n"
    "@f.register(int)\ndef _(x: int) -> int:\n    return 2\n",
    "import codecs\nT = codecs.encode('x', 'rot13')\n",
    "import re\nPATTERN = re.compile(r'\\w+')\n",
    "class Key:\n    __slots__ = ('a',)\n    __hash__ = None\n    __match_args__ = ('a',)\n",
    "from typing import TypedDict\nD = TypedDict('D', {'a': int})\n",
]


@pytest.mark.parametrize("source", HONEST_LOOK_ALIKES)
def test_honest_look_alikes_of_gadgets_pass(source: str) -> None:
    assert scan(source) == []


def test_honest_test_file_features_pass() -> None:
    tests = (
        "import pytest\n\n@pytest.fixture\ndef item() -> int:\n    return 1\n\n"
        "def test_x(item: int, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:\n"
        "    assert request.node.name and item == 1\n"
    )
    assert scan(tests, test_file=True) == []


def test_every_new_message_names_the_class_and_ends_with_the_fix() -> None:
    cases = [(c[4], False) for c in GADGETS] + [(c[3], True) for c in PYTEST_GADGETS + SUPPRESSIONS]
    for source, test_file in cases:
        for finding in scan(source, "NETWORK", test_file=test_file):
            assert "NETWORK" in finding.message, finding.message
            assert finding.message.endswith(")"), finding.message
            assert finding.message.startswith(f"line {finding.line}: "), finding.message
