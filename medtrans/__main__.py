"""``python -m medtrans list [REGISTRY ...]``: what is registered in medtrans' registries.

Every medtrans module and every plugin (the ``medtrans.plugins`` entry points) is imported
first, so a plugin's datasets and models are listed beside medtrans' own, each with the module
that registered it. REGISTRY is a registry name as in ``medtrans.registry`` (``models``,
``datasets``, ``transforms``, ``metrics``, ``hooks``, ``loops``...); without one, all are listed.
Names from MMEngine, mmseg or mmpretrain are found through the parent registries and the scope
prefix (``mmseg.ASPPHead``) and are not listed here.
"""
import argparse
import sys
from typing import List, Optional


def _registries() -> dict:
    from medtrans import registry
    return {name.lower(): getattr(registry, name) for name in registry.__all__}


def list_registered(names: Optional[List[str]] = None) -> str:
    """The listing printed by ``python -m medtrans list``.

    Raises:
        KeyError: An unknown registry name (the message lists the known ones).
    """
    from medtrans.setup_env import register_all_modules

    register_all_modules(init_default_scope=False)
    registries = _registries()
    unknown = [n for n in names or [] if n.lower() not in registries]
    if unknown:
        raise KeyError(f'unknown registr{"y" if len(unknown) == 1 else "ies"} '
                       f'{", ".join(unknown)}; known: {", ".join(registries)}')
    lines = []
    for name in [n.lower() for n in names] if names else list(registries):
        registry = registries[name]
        registry.import_from_location()
        modules = registry.module_dict
        lines.append(f'{name} ({len(modules)} in scope {registry.scope!r})')
        width = max((len(k) for k in modules), default=0)
        lines += [f'  {key:<{width}}  {modules[key].__module__}' for key in sorted(modules)]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m medtrans', description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    listing = commands.add_parser('list', help='list what is registered (plugins included)')
    listing.add_argument('registries', nargs='*', help='e.g. models datasets (default: all)')
    args = parser.parse_args(argv)
    try:
        print(list_registered(args.registries))
    except KeyError as error:
        print(f'python -m medtrans list: {error.args[0]}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
