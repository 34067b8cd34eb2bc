"""Registry misses a user can act on: the config field, the closest registered names, the scope.

MMEngine reports ``'Deit is not in the mmseg::model registry. Please check whether the value of
`Deit` is correct...'``: it names neither the config field nor what is registered. Inside a
section built in another package's scope (``_scope_='mmseg'`` in the segmentation models), a
medtrans type needs its scope prefix (``medtrans.DeiT``), which that message does not suggest.
"""
import contextlib
import difflib
import re
from typing import Any, Iterator, List, Optional, Tuple, Union

import mmengine.registry as mmengine_registry
from mmengine.config import Config

__all__ = ['registry_hint', 'registry_hints']

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
    bare = name.split('.')[-1]
    keys = sorted({key for _, key in candidates})
    picks = [k for k in keys if k.lower() == bare.lower()]
    picks += [k for k in difflib.get_close_matches(bare, keys, n=3, cutoff=0.6) if k not in picks]
    close = [key if owner in (scope, 'mmengine') else f'{owner}.{key}'
             for pick in picks for owner, key in candidates if key == pick]
    where = ' and '.join(fields) if fields else 'a config field'
    message = f"{where}: type '{name}' is not registered in the {registry_name} registry of " \
              f"scope '{scope}'."
    if close:
        message += f" Did you mean {', '.join(repr(c) for c in close[:3])}?"
    message += (f" Inside a section built in scope '{scope}' (`_scope_`), a type of another "
                "package takes its scope prefix, e.g. 'medtrans.DeiT'; `python -m medtrans "
                "list` shows what medtrans and its plugins register.")
    return message


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
