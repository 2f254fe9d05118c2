"""Unlearning methods from outside the package: declared, found and run like a built-in one.

A method written in another package has the built-in signature::

    def my_unlearn(model, split, cfg, ctx) -> model      # see illusion.unlearn

and reaches the library in one of two ways:

- an **entry point** of group ``illusion.methods`` in its package's metadata; the entry point's
  name is the method's name, its value the function (or a :class:`Declaration`)::

      [project.entry-points."illusion.methods"]
      my_unlearn = "mypkg.mymod:my_unlearn"

- a **``module:function``** path, e.g. ``illusion evaluate --method mypkg.mymod:my_unlearn``
  (the method's name is then its declared ``name``, else the function's ``__name__``).

Its traits and settings are declared next to its code, in one :class:`Declaration`; every field
is optional::

    from illusion.outside import declare

    @declare(lr=3e-3, options={"temperature": 2.0}, edits_classifier=False)
    def my_unlearn(model, split, cfg, ctx): ...

``declare`` stores the declaration on the function (attribute ``illusion_method``). A package
that does not want to import ``illusion`` when it is imported may set that attribute to a plain
dict of the same fields (``my_unlearn.illusion_method = {"lr": 3e-3}``), and the entry point
may also name a :class:`Declaration` object itself. A function without a declaration gets the
defaults below.

Settings. An outside method has a settings row (:class:`illusion.config.MethodRow`) built from
its declaration, and every profile treats that row exactly as a built-in one
(:func:`illusion.config.get_profile`): on ``smoke`` the profile's common epochs, LR and batch
size; on ``default`` its common epochs (1) and batch size (128) at the declared ``lr`` (else
:data:`DEFAULT_LR`), and classifier-only at ``classifier_only_lr`` (else
:data:`~illusion.config.CLASSIFIER_ONLY_LR`) for the profile's classifier-only epochs; on the
paper profiles the declared ``epochs`` (3), ``batch_size`` (128) and ``lr``, classifier-only
at ``classifier_only_lr`` (else the full-model LR) in the authors' protocol. Under CMF it runs
with ``cmf_lr`` when declared, else with its full-model settings. Any of them can be
overridden like a built-in method's: ``{"methods.my_unlearn.lr": 1e-3}``,
``{"variant_methods.cmf.my_unlearn.lr": ...}`` (the latter only with ``cmf_lr``).

:func:`load` turns a name or a path into a registered method (idempotent); an
:class:`~illusion.experiment.Experiment` built with ``methods=[...]`` loads them and adds their
settings to its profile; :func:`illusion.evaluation.evaluate_method` writes the report of
``illusion evaluate``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch import nn

from .config import MethodRow, SettingError
from .train import DivergedError
from .unlearn import LOOP_OPTIONS, METHODS, Method, register

GROUP = "illusion.methods"          # the entry-point group outside methods register under
ATTRIBUTE = "illusion_method"       # where declare() puts the declaration on the function
# The full-model LR of a method that declares none: the LR the laptop tuning chose for
# NegGrad+ and SCRUB on the default profile, in the middle of the built-in methods' range
# there (3e-4 to 1e-2), and retain_ft's on the paper profiles. Override it per run with
# ``methods.<name>.lr``.
DEFAULT_LR = 1e-3
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a name dotted overrides can address


class MethodError(ValueError):
    """A method that cannot be found or loaded; the message names the bad value and the
    valid choices."""


class OutsideMethodError(RuntimeError):
    """An outside method failed while it ran, or returned something that is not the model."""


@dataclass(frozen=True)
class Declaration:
    """What an outside method declares besides its code: its traits (as the built-in methods
    declare them to :func:`illusion.unlearn.register`) and its settings row.

    - ``name``: its name in the registry and in settings (default: the entry point's name, or
      the function's ``__name__``); letters, digits and ``_``.
    - ``edits_classifier``: training-free, edits only the last layer (no classifier-only run);
      ``image_only``: its loss needs images (classifier-only runs in the authors' protocol).
    - ``options``: the options it reads from ``cfg.options``, with their default values.
    - ``lr`` (None: :data:`DEFAULT_LR`), ``epochs``, ``batch_size``: its full-model settings;
      ``fixed``: those the laptop profiles must not replace by their common settings
      (a training-free method: ``("epochs", "lr", "batch_size")`` with ``epochs=0, lr=0``).
    - ``classifier_only_lr``: its classifier-only LR (None: the profile's rule);
      ``cmf_lr``: its LR under CMF (None: the full-model settings).
    """

    function: Callable[..., nn.Module] | None = None
    name: str | None = None
    edits_classifier: bool = False
    image_only: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    lr: float | None = None
    epochs: int = 3
    batch_size: int = 128
    fixed: tuple[str, ...] = ()
    classifier_only_lr: float | None = None
    cmf_lr: float | None = None

    def row(self, name: str) -> MethodRow:
        """Its settings row on every profile."""
        lr = DEFAULT_LR if self.lr is None else self.lr
        co = self.classifier_only_lr
        return MethodRow(name, epochs=self.epochs, batch_size=self.batch_size,
                         paper_lrs=(lr, lr, lr), laptop_lr=lr, options=dict(self.options),
                         fixed=tuple(self.fixed), classifier_only_lr=co,
                         classifier_only_paper_lrs=None if co is None else (co, co, co))

    def cmf_row(self, name: str) -> MethodRow | None:
        """Its settings row under CMF, when it declares ``cmf_lr``."""
        if self.cmf_lr is None:
            return None
        return dataclasses.replace(self.row(name), paper_lrs=(self.cmf_lr,) * 3,
                                   laptop_lr=self.cmf_lr, classifier_only_lr=None,
                                   classifier_only_paper_lrs=None)


FIELDS = tuple(f.name for f in dataclasses.fields(Declaration) if f.name != "function")


def declare(**fields: Any) -> Callable[[Callable], Callable]:
    """Decorator: attach a :class:`Declaration` of ``fields`` to an outside method."""
    _check_fields(fields, "declare()")

    def attach(fn: Callable) -> Callable:
        setattr(fn, ATTRIBUTE, Declaration(fn, **fields))
        return fn
    return attach


def _check_fields(fields: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise MethodError(f"{where}: unknown declaration field(s) {unknown}; valid choices: "
                          f"{list(FIELDS)}")


def declaration(name: str) -> Declaration | None:
    """The declaration of registered method ``name`` (None for a built-in method)."""
    return getattr(METHODS.get(name), "declaration", None)


# --------------------------------------------------------------------------------------------
# Finding methods


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """The entry points of group :data:`GROUP` of every installed distribution, by name."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name in found and found[ep.name].value != ep.value:
            raise MethodError(f"two installed packages declare method {ep.name!r} "
                              f"(entry points {found[ep.name].value!r} and {ep.value!r})")
        found[ep.name] = ep
    return found


def choices() -> list[str]:
    """Every method name :func:`load` accepts (besides a ``module:function`` path)."""
    return sorted(set(METHODS) | set(entry_points()))


def load(spec: str) -> str:
    """Register the method ``spec`` names and return its registry name. ``spec`` is a
    registered method (``rl``), an entry point of :data:`GROUP`, or ``module:function``.
    Loading the same method again returns the same name."""
    if not isinstance(spec, str) or not spec.strip():
        raise MethodError(f"method {spec!r}: give a method name or 'module:function'; "
                          f"valid choices: {choices()}")
    spec = spec.strip()
    if ":" in spec:
        return _register(_import(spec), spec, None)
    if spec in METHODS:
        return spec
    points = entry_points()
    if spec not in points:
        raise MethodError(f"unknown unlearning method {spec!r}; valid choices: {choices()} "
                          f"(built-in, or entry points of group {GROUP!r}), or a path "
                          f"'module:function' to a method")
    ep = points[spec]
    try:
        target = ep.load()
    except Exception as error:  # an installed package whose module fails to import
        raise MethodError(f"entry point {spec!r} = {ep.value!r} (group {GROUP!r}) cannot be "
                          f"loaded: {type(error).__name__}: {error}") from None
    return _register(target, ep.value, spec)


def _import(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute or ":" in attribute:
        raise MethodError(f"method path {spec!r}: write 'module:function', like "
                          f"'mypkg.mymod:my_unlearn'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise MethodError(f"method path {spec!r}: cannot import module {module_name!r} "
                          f"({type(error).__name__}: {error}); check the module path and "
                          f"that its package is importable") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            callables = sorted(n for n, v in vars(module).items()
                               if not n.startswith("_") and callable(v)
                               and getattr(v, "__module__", module_name) == module_name)
            raise MethodError(f"method path {spec!r}: module {module_name!r} has no "
                              f"{attribute!r}; valid choices: {callables}")
        target = getattr(target, part)
    return target


def _declaration_of(target: Any, origin: str) -> Declaration:
    """The declaration of what an entry point or a path names."""
    if isinstance(target, Declaration):
        decl = target
    elif callable(target):
        attached = getattr(target, ATTRIBUTE, None)
        if isinstance(attached, Declaration):
            decl = attached if attached.function is not None else dataclasses.replace(
                attached, function=target)
        elif isinstance(attached, Mapping):
            _check_fields(attached, f"{origin}.{ATTRIBUTE}")
            decl = Declaration(target, **attached)
        elif attached is None:
            decl = Declaration(target)
        else:
            raise MethodError(f"{origin}: attribute {ATTRIBUTE!r} must be an "
                              f"illusion.outside.Declaration or a dict of its fields "
                              f"{list(FIELDS)}; got {type(attached).__name__}")
    else:
        raise MethodError(f"{origin} is a {type(target).__name__}, not a method: give a "
                          f"function (model, split, cfg, ctx) -> model or a Declaration")
    if not callable(decl.function):
        raise MethodError(f"{origin}: the declaration's function is not callable")
    try:
        inspect.signature(decl.function).bind(None, None, None, None)
    except TypeError:
        raise MethodError(f"{origin}: a method takes (model, split, cfg, ctx) like the "
                          f"built-in ones; its signature is "
                          f"{inspect.signature(decl.function)}") from None
    except ValueError:  # no signature to inspect (a builtin): accept it
        pass
    unknown = sorted(set(decl.fixed) - {"epochs", "lr", "batch_size"})
    if unknown:
        raise MethodError(f"{origin}: fixed {unknown} are not settings; valid choices: "
                          f"['batch_size', 'epochs', 'lr']")
    return decl


def _register(target: Any, origin: str, entry_point: str | None) -> str:
    decl = _declaration_of(target, origin)
    name = entry_point or decl.name or getattr(decl.function, "__name__", None)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise MethodError(f"{origin}: method name {name!r} is not usable in settings (letters, "
                          f"digits and '_', not starting with a digit); declare another one: "
                          f"declare(name='my_method')")
    if name in METHODS:
        existing = declaration(name)
        if existing is not None and METHODS[name].origin == origin:
            return name
        taken = (f"the method from {METHODS[name].origin}" if existing is not None
                 else "a built-in method")
        raise MethodError(f"{origin}: method name {name!r} is taken by {taken}; declare "
                          f"another name (declare(name=...)); registered: {sorted(METHODS)}")
    decl = dataclasses.replace(decl, name=name)
    options = tuple(o for o in decl.options if o not in LOOP_OPTIONS)
    register(name, edits_classifier=decl.edits_classifier, image_only=decl.image_only,
             options=options)(_checked(decl, name, origin))
    return name


def _checked(decl: Declaration, name: str, origin: str) -> Method:
    """The outside function, run as a registered method: its failures and a result that is
    not the model it was given (another structure, dtype or device, None) are reported with
    its name, in one line."""
    function = decl.function

    @functools.wraps(function)
    def method(model: nn.Module, split, cfg, ctx) -> nn.Module:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        given = {k: (v.dtype, v.device) for k, v in model.state_dict().items()}
        try:
            result = function(model, split, cfg, ctx)
        except (DivergedError, SettingError):
            raise
        except Exception as error:
            raise OutsideMethodError(f"method {name!r} ({origin}) raised {type(error).__name__}: "
                                     f"{error}") from error
        if not isinstance(result, nn.Module):
            raise OutsideMethodError(f"method {name!r} ({origin}) returned a "
                                     f"{type(result).__name__}; a method returns the unlearned "
                                     f"model (the one it was given, changed)")
        got = {k: tuple(v.shape) for k, v in result.state_dict().items()}
        if got != expected:
            differ = sorted(set(got) ^ set(expected)) or sorted(
                k for k in got if got[k] != expected[k])
            raise OutsideMethodError(f"method {name!r} ({origin}) returned a model of another "
                                     f"structure than it was given (tensors {differ[:4]} "
                                     f"differ); a method changes the weights, not the layers")
        returned = {k: (v.dtype, v.device) for k, v in result.state_dict().items()}
        differ = [k for k in returned if returned[k] != given[k]]
        if differ:
            (dtype, device), (want_dtype, want_device) = returned[differ[0]], given[differ[0]]
            raise OutsideMethodError(f"method {name!r} ({origin}) returned {differ[0]!r} as "
                                     f"{dtype} on {device} ({len(differ)} tensor(s) differ); it "
                                     f"was given {want_dtype} on {want_device}: return the "
                                     f"model in the dtype and on the device it came in")
        return result

    method.__wrapped__ = function
    method.declaration = decl
    method.origin = origin
    method.code = source_hash(function)
    return method


def source_hash(function: Callable) -> str | None:
    """SHA-256 of the source of ``function``'s module (None when it has none): part of the
    store key of the models an outside method computes, so editing the method recomputes them
    instead of reusing stale ones (the built-in methods' code is the package's version)."""
    module = inspect.getmodule(function)
    try:
        source = inspect.getsource(module if module is not None else function)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:16]
