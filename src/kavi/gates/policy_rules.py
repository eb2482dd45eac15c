"""The rule tables of the policy gate: what a skill may name, per side-effect class.

The tables are data so that a reviewer can read the whole policy in one place; the visitor in
:mod:`kavi.gates.policy` only looks names up here.

How a dotted name is judged (:func:`classify`): the longest key of :data:`MODULE_RULES` that is the
name itself or a dotted prefix of it decides. ``os.path.join`` is decided by ``os.path`` (allowed),
``os.system`` by ``os.system`` (never), ``urllib.parse.quote`` by ``urllib.parse`` (allowed) and
``urllib.request.urlopen`` by ``urllib`` (NETWORK only). A module that no key covers is refused:
imports are
**deny-by-default**, because a denylist of the standard library and of every installed package
would always miss one (``platform`` spawns ``uname``, ``antigravity`` opens a browser,
``sqlite3.connect`` creates files). A few modules (``os``, ``sys``, ``types``, ``ast``, ``shutil``)
list the members a skill may use; any other member of theirs is refused too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from kavi.side_effects import SideEffect

_FILE = frozenset({SideEffect.FILE_WRITE})
_NET = frozenset({SideEffect.NETWORK})
_PROC = frozenset({SideEffect.SUBPROCESS})
_SECRET = frozenset({SideEffect.SECRET_READ})
_NEVER: frozenset[SideEffect] = frozenset()


@dataclass(frozen=True)
class Effect:
    """Naming this is an effect: ``rule`` is the finding id, ``what`` completes "<name> ..." in a
    message, and ``allowed_by`` lists the side-effect classes that may have it (empty: none may)."""

    rule: str
    what: str
    allowed_by: frozenset[SideEffect] = _NEVER

    def allows(self, side_effect: SideEffect) -> bool:
        return side_effect in self.allowed_by


@dataclass(frozen=True)
class Allow:
    """Naming this is fine. With ``members``, only those direct members are (deny-by-default
    inside)."""

    members: frozenset[str] | None = None


@dataclass(frozen=True)
class OpenLike:
    """A call that opens a file; it writes when its mode (argument ``mode_index`` or ``mode=``)
    contains
    ``w``, ``a``, ``x`` or ``+``, or is not a literal. Referenced without being called, it counts
    as a write."""

    mode_index: int


@dataclass(frozen=True)
class NameLookup:
    """Looks an attribute up by a string (``getattr``, ``operator.attrgetter``): the string must be
    a literal, and is then judged like the attribute it names."""

    name_index: int


Rule = Effect | Allow | OpenLike | NameLookup

_ALLOW = Allow()


def _names(text: str) -> frozenset[str]:
    """A set of names written as one whitespace-separated block, so the tables stay readable."""
    return frozenset(text.split())


def _effect(keys: str, rule: str, what: str, allowed_by: frozenset[SideEffect] = _NEVER) -> dict[str, Rule]:
    return {key: Effect(rule, what, allowed_by) for key in keys.split()}


_PURE_MODULES = """
__future__ _hashlib abc annotated_types array base64 binascii bisect calendar cmath collections
colorsys contextlib contextvars copy csv dataclasses datetime decimal difflib email enum errno
fnmatch fractions functools glob graphlib hashlib heapq hmac html ipaddress itertools json
keyword math numbers operator pathlib pprint pydantic random re secrets shlex stat statistics
string struct textwrap time typing typing_extensions unicodedata uuid warnings zoneinfo zlib
gzip bz2 lzma io codecs urllib.parse kavi.skill kavi.side_effects
"""

_OS_MEMBERS = _names(
    """path sep altsep extsep pathsep linesep defpath devnull curdir pardir name fspath fsencode
    fsdecode PathLike DirEntry stat_result terminal_size getcwd getcwdb listdir scandir walk stat
    lstat access readlink cpu_count urandom getpid getppid getuid getgid geteuid getegid strerror
    get_terminal_size error read close fstat isatty SEEK_SET SEEK_CUR SEEK_END F_OK R_OK W_OK X_OK
    O_RDONLY O_CLOEXEC O_NOFOLLOW O_DIRECTORY O_NONBLOCK"""
)
_SYS_MEMBERS = _names(
    """byteorder float_info int_info hash_info maxsize maxunicode version version_info hexversion
    implementation platform stdin stdout stderr getrecursionlimit getsizeof getdefaultencoding
    getfilesystemencoding exc_info exception intern float_repr_style flags exit"""
)
_TYPES_MEMBERS = _names(
    "SimpleNamespace MappingProxyType NoneType GenericAlias UnionType EllipsisType NotImplementedType"
)
_SHUTIL_MEMBERS = _names("which disk_usage get_terminal_size copyfileobj Error SameFileError get_archive_formats")

_LOGGING_MEMBERS = _names(
    """getLogger Logger LoggerAdapter NullHandler StreamHandler Handler LogRecord DEBUG INFO WARNING
    ERROR CRITICAL NOTSET debug info warning error exception critical log getLevelName"""
)


@dataclass(frozen=True)
class AttributeFamily:
    """One family of library features that read (or call) attributes whose names are data: a
    ``getattr`` in disguise. ``judged`` says how the scan treats it: ``refused`` (every name, keyword
    and string that spells it, wherever it appears), ``literal-name`` (the attribute name must be a
    literal, then judged like ``obj.name``), ``literal-template`` (the template must be a literal
    whose fields read no private or special attribute)."""

    family: str
    what: str
    judged: str
    names: frozenset[str] = frozenset()
    keywords: frozenset[str] = frozenset()


#: Every way to read an attribute by a name the source does not spell, in one table. A new gadget
#: of this class is one row here. ``keywords`` are refused as call keywords, as names assigned in a
#: class body (``class Config: orm_mode = True``) and as string constants (dict-form configs).
ATTRIBUTE_BY_DATA: tuple[AttributeFamily, ...] = (
    AttributeFamily(
        "pydantic from_attributes",
        "makes pydantic read an object's attributes by field names and aliases (data)",
        "refused",
        keywords=_names("from_attributes orm_mode"),
    ),
    AttributeFamily(
        "pydantic aliases",
        "computes or lists the attribute paths pydantic reads (AliasPath('__init__', ...), an "
        "alias_generator that leaves no string in the source)",
        "refused",
        names=_names(
            "pydantic.AliasPath pydantic.AliasChoices pydantic.AliasGenerator pydantic.aliases "
            "pydantic.alias_generators pydantic.config.ConfigDict.alias_generator"
        ),
        keywords=_names("alias_generator"),
    ),
    AttributeFamily(
        "string formatters",
        "formats a template whose fields read attributes ({0.__init__.__globals__})",
        "refused",
        names=_names("string.Formatter"),
    ),
    AttributeFamily(
        "logging formatters",
        "formats log records with a template whose fields read attributes",
        "refused",
        names=_names(
            "logging.Formatter logging.BufferingFormatter logging.PercentStyle logging.StrFormatStyle "
            "logging.StringTemplateStyle logging.setLogRecordFactory logging.makeLogRecord "
            "logging.basicConfig"
        ),
    ),
    AttributeFamily(
        "str.format",
        "reads the attributes its template's fields name",
        "literal-template",
        names=_names("str.format str.format_map"),
    ),
    AttributeFamily(
        "getattr by name",
        "looks an attribute up by a string",
        "literal-name",
        names=_names("getattr setattr delattr hasattr operator.attrgetter operator.methodcaller"),
    ),
)

#: Keywords, class-body names and strings that switch a refused family on (see above).
DATA_ATTRIBUTE_KEYWORDS: dict[str, AttributeFamily] = {
    keyword: family for family in ATTRIBUTE_BY_DATA if family.judged == "refused" for keyword in family.keywords
}


MODULE_RULES: dict[str, Rule] = {
    **{name: _ALLOW for name in _PURE_MODULES.split()},
    "os": Allow(_OS_MEMBERS),
    "os.path": _ALLOW,
    "sys": Allow(_SYS_MEMBERS),
    "types": Allow(_TYPES_MEMBERS),
    "shutil": Allow(_SHUTIL_MEMBERS),
    "ast": Allow(frozenset({"literal_eval"})),
    "logging": Allow(_LOGGING_MEMBERS),
    # -- never, whatever the class
    # ------------------------------------------------------------------
    **_effect(
        "importlib imp pkgutil zipimport runpy modulefinder sys.modules sys.meta_path sys.path "
        "sys.path_hooks sys.path_importer_cache pydantic.ImportString pydantic.types.ImportString "
        "logging.config",
        "dynamic-import",
        "imports a module chosen at run time",
    ),
    **_effect(
        "typing.get_type_hints typing_extensions.get_type_hints pydantic.create_model dataclasses.make_dataclass",
        "annotation",
        "evaluates type annotations built at run time (pydantic and typing eval strings)",
    ),
    **_effect(
        "json.tool",
        "forbidden-member",
        "is a command-line entry point (it reads sys.argv and writes files)",
    ),
    **_effect(
        "builtins enum.bltns code codeop typing.ForwardRef",
        "eval-exec",
        "evaluates or compiles code, or reaches the builtins behind eval/exec",
    ),
    **_effect(
        "inspect gc traceback sys._getframe sys._current_frames sys.settrace sys.setprofile "
        "sys.addaudithook sys.audit sys.breakpointhook",
        "introspection",
        "inspects the interpreter (frames, globals, audit hooks)",
    ),
    **_effect("ctypes _ctypes cffi mmap", "ctypes", "calls native code or maps raw memory"),
    **_effect(
        "pickle _pickle marshal shelve dill cloudpickle copyreg jsonpickle",
        "pickle",
        "deserialises objects that can run code",
    ),
    **_effect(
        "os.system os.popen os.startfile os.execl os.execle os.execlp os.execlpe "
        "os.execv os.execve "
        "os.execvp os.execvpe os.spawnl os.spawnle os.spawnlp os.spawnlpe os.spawnv os.spawnve "
        "os.spawnvp os.spawnvpe",
        "subprocess",
        "runs a program outside any subprocess policy",
    ),
    **_effect(
        "os.fork os.forkpty os.kill os.killpg os.abort os._exit pty signal "
        "multiprocessing threading "
        "_thread concurrent",
        "process-control",
        "forks, signals or starts threads and processes",
    ),
    **_effect(
        "kavi",
        "kavi-internal",
        "is kavi's own machinery (a skill may import kavi.skill and kavi.side_effects only)",
    ),
    **_effect(
        "pydantic.v1 pydantic.mypy pydantic.plugin pydantic.deprecated pydantic.experimental logging.handlers",
        "forbidden-import",
        "is not on the import allowlist (it reads settings, opens sockets or formats attributes)",
    ),
    # -- gadgets: library features that run code the scan cannot see, whatever the class
    **{
        name: Effect("attribute-by-data", family.what)
        for family in (f for f in ATTRIBUTE_BY_DATA if f.judged == "refused")
        for name in family.names
    },
    **_effect(
        "pydantic.validate_call pydantic.validate_arguments typing.evaluate_forward_ref "
        "typing_extensions.evaluate_forward_ref annotationlib",
        "annotation",
        "evaluates annotations at run time (a string annotation is an eval in disguise)",
    ),
    **_effect(
        "enum.global_enum enum.global_enum_repr enum.global_str enum.global_flag_repr",
        "module-patch",
        "copies enum members into the globals of the module the enum names (any module)",
    ),
    **_effect(
        "codecs.register codecs.register_error codecs.unregister atexit sys.excepthook "
        "sys.unraisablehook sys.displayhook threading.excepthook weakref copyreg faulthandler "
        "signal.signal gc.callbacks",
        "registry",
        "keeps an object alive in an interpreter registry, where its code can run after the "
        "audit hooks are gone (at exit, on an error, at finalization)",
    ),
    # -- SUBPROCESS
    # ---------------------------------------------------------------------------------
    **_effect(
        "subprocess os.posix_spawn os.posix_spawnp asyncio.subprocess "
        "asyncio.create_subprocess_exec "
        "asyncio.create_subprocess_shell uuid.uuid1 uuid.getnode",
        "subprocess",
        "spawns a process",
        _PROC,
    ),
    # -- NETWORK
    # ------------------------------------------------------------------------------------
    **_effect(
        "socket _socket ssl http urllib ftplib smtplib poplib imaplib telnetlib xmlrpc "
        "requests httpx "
        "aiohttp urllib3 certifi websocket websockets asyncio.open_connection asyncio.start_server "
        "asyncio.open_unix_connection asyncio.start_unix_server",
        "network",
        "opens network connections",
        _NET,
    ),
    "asyncio": Effect("forbidden-import", "is an event loop with process and socket APIs", _NET | _PROC),
    # -- SECRET_READ
    # --------------------------------------------------------------------------------
    **_effect(
        "os.environ os.environb os.getenv os.getenvb os.putenv os.unsetenv os.path.expandvars dotenv",
        "env-read",
        "reads or changes environment variables",
        _SECRET,
    ),
    # -- FILE_WRITE
    # ---------------------------------------------------------------------------------
    **_effect(
        "os.remove os.unlink os.rename os.renames os.replace os.mkdir os.makedirs os.rmdir "
        "os.removedirs os.chmod os.lchmod os.fchmod os.chown os.lchown os.fchown "
        "os.symlink os.link "
        "os.truncate os.ftruncate os.write os.pwrite os.writev os.open os.utime os.mkfifo os.mknod "
        "os.sendfile os.copy_file_range shutil.copy shutil.copy2 shutil.copyfile shutil.copymode "
        "shutil.copystat shutil.copytree shutil.move shutil.rmtree shutil.make_archive "
        "shutil.unpack_archive shutil.chown tempfile logging.FileHandler",
        "file-write",
        "writes to the file system",
        _FILE,
    ),
    "io.open": OpenLike(1),
    "io.FileIO": OpenLike(1),
    "codecs.open": OpenLike(1),
    "gzip.open": OpenLike(1),
    "gzip.GzipFile": OpenLike(1),
    "bz2.open": OpenLike(1),
    "bz2.BZ2File": OpenLike(1),
    "lzma.open": OpenLike(1),
    "lzma.LZMAFile": OpenLike(1),
    "os.fdopen": OpenLike(1),
    "operator.attrgetter": NameLookup(0),
    "operator.methodcaller": NameLookup(0),
}

#: Extra modules a test file may import (a skill file may not: it has no business running pytest).
TEST_MODULE_RULES: dict[str, Rule] = {
    "pytest": Allow(
        _names(
            """raises warns deprecated_call approx mark param fixture fail skip xfail MonkeyPatch
            CaptureFixture LogCaptureFixture FixtureRequest TempPathFactory ExceptionInfo
            PytestWarning WarningsRecorder RecordedHookCall importorskip main
            register_assert_rewrite Pytester"""
        )
    ),
    **_effect(
        "pytest.main pytest.importorskip pytest.register_assert_rewrite pytest.Pytester",
        "dynamic-import",
        "imports or runs modules chosen at run time",
    ),
}

#: Builtins that are refused or checked wherever their name is used (even if a local name shadows
#: one: rename the local instead). ``type`` has its own rule in the visitor: ``type(x)`` may be
#: compared or named, not called.
BUILTIN_RULES: dict[str, Rule] = {
    **_effect("eval exec compile", "eval-exec", "evaluates or compiles code"),
    **_effect("__import__ breakpoint", "dynamic-import", "imports a module chosen at run time"),
    **_effect("globals locals vars", "introspection", "exposes a namespace dictionary"),
    **_effect("help", "subprocess", "starts the pydoc pager (a subprocess)"),
    "open": OpenLike(1),
    **{name: NameLookup(1) for name in ("getattr", "setattr", "delattr", "hasattr")},
}


@dataclass(frozen=True)
class MethodRule:
    """A method name judged on any receiver, because the receiver's type is unknown statically
    (``Path(p).write_text``, ``loop.subprocess_exec``). ``calls_only``: judge it only when it is
    called, for names that are also plausible data fields (``msg.system``)."""

    effect: Effect
    calls_only: bool = False


def _methods(names: str, effect: Effect, *, calls_only: bool = False) -> dict[str, MethodRule]:
    return {name: MethodRule(effect, calls_only) for name in names.split()}


METHOD_RULES: dict[str, MethodRule] = {
    **_methods(
        "write_text write_bytes touch mkdir makedirs unlink rmdir rename symlink_to hardlink_to "
        "link_to chmod lchmod mktemp mkdtemp mkstemp extractall ensure",
        Effect("file-write", "writes to the file system", _FILE),
    ),
    **_methods(
        "subprocess_exec subprocess_shell create_subprocess_exec create_subprocess_shell posix_spawn posix_spawnp",
        Effect("subprocess", "spawns a process", _PROC),
    ),
    **_methods(
        "create_connection open_connection start_server create_server create_unix_connection "
        "create_unix_server create_datagram_endpoint sock_connect getaddrinfo getnameinfo urlopen "
        "urlretrieve connect_accepted_socket",
        Effect("network", "opens network connections", _NET),
    ),
    **_methods(
        "import_module load_module exec_module import_plugin",
        Effect("dynamic-import", "imports a module chosen at run time"),
    ),
    **_methods("setenv delenv", Effect("env-read", "changes environment variables", _SECRET)),
    **_methods(
        "system popen",
        Effect("subprocess", "runs a program outside any subprocess policy"),
        calls_only=True,
    ),
    **_methods("mro", Effect("introspection", "walks the class hierarchy")),
    **_methods(
        "environ environb getenv getenvb putenv unsetenv expandvars",
        Effect("env-read", "reads or changes environment variables", _SECRET),
    ),
    **_methods(
        "fork forkpty execv execve execvp execvpe spawnv spawnve",
        Effect("process-control", "forks or replaces the process"),
        calls_only=True,
    ),
    **_methods(
        "model_rebuild update_forward_refs",
        Effect("annotation", "re-evaluates annotations against a namespace you pass"),
    ),
    **_methods(
        "main",
        Effect(
            "forbidden-member",
            "is a command-line entry point (it reads sys.argv and may write files)",
        ),
        calls_only=True,
    ),
}

#: pytest fixtures a test may only request (as a parameter) if its class allows what they do.
FIXTURE_RULES: dict[str, Effect] = {
    **{
        name: Effect("file-write", "is a fixture whose objects write files", _FILE)
        for name in ("tmpdir", "tmpdir_factory", "cache")
    },
    **{
        name: Effect("subprocess", "is a fixture that runs pytest in-process or as a subprocess")
        for name in ("pytester", "testdir")
    },
    **{
        name: Effect("pytest-internals", "is a fixture that reaches pytest's configuration, session or report")
        for name in (
            "pytestconfig",
            "record_property",
            "record_testsuite_property",
            "record_xml_attribute",
            "doctest_namespace",
        )
    },
}

#: Attributes a test file may not read on any receiver: pytest's configuration, plugin manager and
#: session, through which a test can register a plugin that decides other tests' outcomes or reset
#: the failure count (``request.session.testsfailed = 0``). The verdict is pytest's, not the tests'.
PYTEST_INTERNALS = _names(
    """config pluginmanager session testsfailed testscollected shouldfail shouldstop ihook hook
    stash _pyfuncitem"""
)

#: Calls whose first argument names the program they run (judged against ``spec.executables``),
#: those that always run a shell, and those whose first argument is a URL (against
#: ``spec.allow_hosts``).
PROCESS_CALLS = _names(
    """run Popen call check_call check_output getoutput getstatusoutput create_subprocess_exec
    create_subprocess_shell subprocess_exec subprocess_shell posix_spawn posix_spawnp"""
)
SHELL_CALLS = _names("getoutput getstatusoutput create_subprocess_shell subprocess_shell")
URL_CALLS = _names(
    """urlopen urlretrieve Request get post put patch delete head options request stream
    HTTPConnection HTTPSConnection create_connection open_connection"""
)

#: ``__annotations__`` is not among them: a computed string put into it is evaluated by pydantic,
#: ``validate_call`` or ``get_type_hints`` (an eval in disguise); every annotation must be written
#: in the source, where the annotation rule judges it.
#: Dunder attributes that are harmless on any object: names, docs, the protocol methods that a
#: subclass calls on ``super()``. Everything else (``__class__``, ``__dict__``, ``__globals__``,
#: ``__subclasses__``, ``__self__``, ``__getattribute__``, ``__reduce__``, ``__setattr__`` ...)
#: leads to interpreter internals or is getattr in disguise, and is refused.
#: ``object.__setattr__(self, ...)`` in a frozen dataclass is refused too: use
#: ``dataclasses.replace`` or a pydantic model.
DUNDER_ALLOWED = _names(
    """__init__ __new__ __post_init__ __init_subclass__ __name__ __qualname__ __doc__ __module__
    __file__ __all__ __version__ __slots__ __match_args__ __debug__ __len__
    __iter__ __next__ __aiter__ __anext__ __enter__ __exit__ __aenter__ __aexit__ __eq__ __ne__
    __lt__ __le__ __gt__ __ge__ __hash__ __repr__ __str__ __format__ __bool__ __contains__
    __getitem__ __setitem__ __delitem__ __call__ __add__ __sub__ __mul__ __truediv__ __floordiv__
    __mod__ __neg__ __abs__ __round__ __sizeof__"""
)

#: The allowed dunders that are plain data (names, docs), harmless on any receiver. The others
#: in :data:`DUNDER_ALLOWED` are methods, and may only be reached on ``self``, ``cls``, ``super()``
#: or a class: ``file.__init__("x", "w")`` would reopen a read-only file for writing.
DUNDER_DATA = _names(
    "__name__ __qualname__ __doc__ __module__ __file__ __all__ __version__ __slots__ __match_args__ __debug__"
)

#: Underscore names that are public API by convention (namedtuple, enum).
PUBLIC_SUNDERS = _names("_replace _asdict _fields _make _field_defaults _value_ _name_ _missing_ _generate_next_value_")

#: Non-dunder attributes that reach frames, code objects and closures (``gen.gi_frame.f_globals``).
INTROSPECTION_ATTRIBUTES = _names(
    """f_globals f_locals f_builtins f_back f_code f_trace gi_frame gi_code cr_frame cr_code
    ag_frame ag_code tb_frame tb_next co_code co_consts co_names cell_contents func_globals im_func
    im_self"""
)

#: Module names that, reached as an attribute of *anything* (``obj.os``, ``x._os``), are treated as
#: that module: the chain is re-rooted there and judged (``p.os.system`` is ``os.system``). They
#: are the modules with effects that other modules commonly import, plus known aliases
#: (``enum.bltns``).
GATEWAY_MODULES = _names(
    """os _os posix nt posixpath ntpath genericpath sys _sys subprocess _posixsubprocess builtins
    bltns socket _socket ssl _ssl importlib _imp _frozen_importlib _frozen_importlib_external
    zipimport pkgutil ctypes _ctypes shutil io _io codecs _codecs pathlib tempfile signal _signal
    pickle _pickle marshal inspect gc threading _thread multiprocessing asyncio runpy pty code
    codeop urllib http requests httpx logging dotenv sysconfig site platform types _types copyreg
    kavi"""
)

#: The private C modules behind the standard library (``_locale``, ``_socket``) count as well.
GATEWAY_MODULES |= {name for name in sys.stdlib_module_names if name.startswith("_")}

#: Attribute names that, on a module chain, re-root the chain (``json.codecs`` is ``codecs``).
MODULE_NAMES = frozenset(sys.stdlib_module_names) | GATEWAY_MODULES | {key.split(".")[0] for key in MODULE_RULES}

#: Path prefixes of kernel interfaces a skill must never open (``/proc/self/environ`` holds every
#: secret).
DEVICE_PREFIXES = ("/dev/", "/proc/", "/sys/")


#: Other names of the same module (``tempfile._os`` is ``os``): judged as the module they are.
MODULE_ALIASES = {
    "_os": "os",
    "posix": "os",
    "nt": "os",
    "posixpath": "os.path",
    "ntpath": "os.path",
    "_sys": "sys",
    "bltns": "builtins",
    "_io": "io",
    "_codecs": "codecs",
    "_signal": "signal",
    "_types": "types",
}


def classify(qualname: str, extra: dict[str, Rule]) -> Rule | None:
    """Judge a dotted name by the longest matching key; ``None`` when no key covers it (not
    allowed)."""
    parts = qualname.split(".")
    parts[:1] = MODULE_ALIASES.get(parts[0], parts[0]).split(".")
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        rule = extra.get(key) or MODULE_RULES.get(key)
        if rule is None:
            continue
        if isinstance(rule, OpenLike) and end < len(parts):  # io.FileIO.__init__ opens files too
            return Effect("file-write", "reaches inside a file opener (its mode is unknown)", _FILE)
        if isinstance(rule, NameLookup) and end < len(parts):
            return Effect("getattr-string", "reaches inside an attribute lookup by name")
        members = rule.members if isinstance(rule, Allow) else None
        if members is not None and end < len(parts) and parts[end] not in members:
            return Effect("forbidden-member", f"is not on the allowlist of {key} members")
        return rule
    return None


#: Comments that switch a gate (or one of its rule families) off for a whole file (the key follows
#: the hash sign), by the tool that reads them: refused (rule ``suppression``), because a
#: candidate must not choose which checks it gets. Matched case-insensitively at the start of
#: any hash-separated part of a comment.
FILE_SUPPRESSIONS: dict[str, str] = {
    "ruff:": "ruff (# ruff: noqa switches the lint gate off for the file)",
    "flake8:": "ruff (it honours # flake8: noqa for the whole file)",
    "isort:": "ruff's import rules (# isort: skip_file)",
    "mypy:": "mypy (inline configuration: ignore-errors, disable-error-code ...)",
    "pyright:": "pyright (inline configuration)",
    "pyre-": "pyre (# pyre-ignore-all-errors)",
    "pylint:": "pylint (inline configuration)",
    "pytype:": "pytype (inline configuration)",
    "nosec": "bandit (the S rules' origin)",
}

#: The only line-level waivers a candidate may write, per comment kind: a noqa comment with codes
#: for these ruff rules and a type-ignore comment with codes for these mypy error codes, on a line
#: of code. A waiver without codes (every rule) is refused, and so is a type-ignore before
#: the first statement (mypy then ignores the whole file). Why each is waivable: E402 (an import
#: after ``pytest.importorskip``), E501 (a long literal), RUF001-RUF003 (text skills quote
#: look-alike characters), S311 (``random`` for sampling, not for secrets); import-untyped (a
#: library without stubs).
WAIVABLE: dict[str, frozenset[str]] = {
    "noqa": frozenset({"BLE001", "E402", "E501", "RUF001", "RUF002", "RUF003", "S311"}),
    "type: ignore": frozenset({"import-untyped"}),
}
