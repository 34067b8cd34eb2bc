"""Registry misses a user can act on: the config field, the closest registered names, the scope.

MMEngine reports ``'Deit is not in the mmseg::model registry. Please check whether the value of
`Deit` is correct...'``: it names neither the config field nor what is registered. Inside a
section built in another package's scope (``_scope_='mmseg'`` in the segmentation models), a
medtrans type needs its scope prefix (``medtrans.DeiT``), which that message does not suggest.

:func:`unregistered_types` finds such misses in a config before anything is built, so that the
tools refuse a run at once rather than after the Runner has started.
"""
import contextlib
import difflib
import importlib
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import mmengine.registry as mmengine_registry
from mmengine.config import Config

__all__ = ['registry_hint', 'registry_hints', 'unregistered_types']

_MISS = re.compile(r"^'?(?P<name>[\w.]+) is not in the (?P<scope>[\w]+)::(?P<registry>[\w ]+) "
                   r'registry')


def _type_fields(node: Any, name: str, path: str = '') -> Iterator[str]:
    if isinstance(node, dict):
        if node.get('type') == name:
            yield f'{path}.type' if path else 'type'
        for key, value in node.items():
            yield from _type_fields(value, name, f'{path}.{key}' if path else str(key))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _type_fields(value, name, f'{path}.{index}')


def _root(registry_name: str):
    for value in vars(mmengine_registry).values():
        if isinstance(value, mmengine_registry.Registry) and value.parent is None \
                and value.name == registry_name:
            return value
    return None


def _registered(root) -> List[Tuple[str, str]]:
    """(scope, name) of everything in a root registry and its children."""
    names = []
    pending = [root]
    while pending:
        registry = pending.pop()
        try:
            registry.import_from_location()
        except Exception:  # a package's lazy import may fail; list what is there
            pass
        names += [(registry.scope, key) for key in registry.module_dict]
        pending += list(registry.children.values())
    return names


def _message(name: str, scope: str, fields: List[str], registry_name: Optional[str],
             candidates: List[Tuple[str, str]]) -> str:
    """What a type missing from a registry is called where, what is close, and the prefix
    rule."""
    bare = name.split('.')[-1]
    keys = sorted({key for _, key in candidates})
    picks = [k for k in keys if k.lower() == bare.lower()]
    picks += [k for k in difflib.get_close_matches(bare, keys, n=3, cutoff=0.6) if k not in picks]
    close = list(dict.fromkeys(key if owner in (scope, 'mmengine') else f'{owner}.{key}'
                               for pick in picks for owner, key in candidates if key == pick))
    where = ' and '.join(fields) if fields else 'a config field'
    registry = f'the {registry_name} registry' if registry_name else 'any registry'
    message = f"{where}: type '{name}' is not registered in {registry} of scope '{scope}'."
    if close:
        message += f" Did you mean {', '.join(repr(c) for c in close[:3])}?"
    message += (f" Inside a section built in scope '{scope}' (`_scope_`), a type of another "
                "package takes its scope prefix, e.g. 'medtrans.DeiT'; `python -m medtrans "
                "list` shows what medtrans and its plugins register.")
    return message


def registry_hint(error: KeyError, cfg: Optional[Union[Config, dict]] = None) -> Optional[str]:
    """A message for MMEngine's registry-miss ``KeyError``, or None for another error.

    Names the config field(s) holding the type, up to three registered names close to it (with
    their scope prefix where they come from another scope than the failing registry's), and
    that prefix rule.
    """
    match = _MISS.match(str(error.args[0]) if error.args else '')
    if match is None:
        return None
    name, scope, registry_name = match['name'], match['scope'], match['registry']
    tree = cfg.to_dict() if isinstance(cfg, Config) else cfg
    fields = list(_type_fields(tree, name)) if tree else []
    root = _root(registry_name)
    candidates = _registered(root) if root is not None else []
    return _message(name, scope, fields, registry_name, candidates)


def _roots() -> List[mmengine_registry.Registry]:
    """MMEngine's root registries, those that configs name most first."""
    first = ('model', 'transform', 'dataset', 'metric', 'hook', 'loop', 'param scheduler',
             'optimizer', 'optim_wrapper')
    roots = [value for value in vars(mmengine_registry).values()
             if isinstance(value, mmengine_registry.Registry) and value.parent is None]
    return sorted(roots, key=lambda r: first.index(r.name) if r.name in first else len(first))


def _scoped(root, scope: Optional[str]):
    """The registry a build in ``scope`` looks names up in: the scope's node of the root's
    tree, or the root itself (as MMEngine falls back)."""
    if scope is None:
        return root
    pending = list(root.children.values())
    while pending:
        registry = pending.pop()
        if registry.scope == scope:
            return registry
        pending += list(registry.children.values())
    return root


def _resolves(name: str, scope: Optional[str]) -> bool:
    for root in _roots():
        try:
            if _scoped(root, scope).get(name) is not None:
                return True
        except Exception:  # noqa: BLE001  (MMEngine's get raises on some malformed names)
            pass
    return False


def _typed_nodes(node: Any, scope: Optional[str], path: str) -> Iterator[Tuple[str, str, str]]:
    """(field, type name, scope it is built in) of every string ``type`` under ``node``."""
    if isinstance(node, dict):
        scope = node.get('_scope_', scope)
        if isinstance(node.get('type'), str):
            yield f'{path}.type', node['type'], scope
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        yield from _typed_nodes(value, scope, f'{path}.{key}')


def unregistered_types(cfg: Union[Config, dict], sections: Sequence[str]) -> List[str]:
    """Every ``type`` in a config's ``sections`` that no registry holds in the scope it is built
    in (the innermost ``_scope_`` above it, else ``default_scope``), as MMEngine looks names up:
    the scope's registries, their parents, another scope's by prefix.

    The registry that builds a field is not known before it is built, so a name counts as
    registered if any registry resolves it: a name registered in the wrong registry passes
    here, and fails with :func:`registry_hints` when it is built.

    Args:
        cfg (Config | dict): The config.
        sections (Sequence[str]): Top-level keys to look in (e.g. the sections the Runner
            builds from).

    Returns:
        list[str]: One message per missing name, naming its fields, the close registered names
        and the scope prefix rule; empty when every name resolves.
    """
    default_scope = cfg.get('default_scope')
    missing: Dict[Tuple[str, Optional[str]], List[str]] = {}
    resolved = set()
    for section in sections:
        for field, name, scope in _typed_nodes(cfg.get(section), default_scope, section):
            if (name, scope) in resolved:
                continue
            if scope is not None:
                try:  # MMEngine imports a scope's registry module before its first build
                    importlib.import_module(f'{scope}.registry')
                except ImportError:
                    pass
            if (name, scope) in missing or not _resolves(name, scope):
                missing.setdefault((name, scope), []).append(field)
            else:
                resolved.add((name, scope))
    if not missing:
        return []
    candidates = [pair for root in _roots() for pair in _registered(root)]
    return [_message(name, scope or 'none', fields, None, candidates)
            for (name, scope), fields in missing.items()]


@contextlib.contextmanager
def registry_hints(cfg=None) -> Iterator[None]:
    """Re-raise MMEngine's registry-miss ``KeyError`` inside the block with
    :func:`registry_hint`'s message (the original chained)."""
    try:
        yield
    except KeyError as error:
        hint = registry_hint(error, cfg)
        if hint is None:
            raise
        raise KeyError(hint) from error
