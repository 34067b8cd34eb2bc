"""``python -m medtrans list [REGISTRY ...] [--config CONFIG]``: what is registered in medtrans'
registries.

Every medtrans module and every plugin (the ``medtrans.plugins`` entry points) is imported
first, so a plugin's datasets and models are listed beside medtrans' own, each with the module
that registered it. REGISTRY is a registry name as in ``medtrans.registry`` (``models``,
``datasets``, ``transforms``, ``metrics``, ``hooks``, ``loops``...); without one, all are listed.
Names from MMEngine, mmseg or mmpretrain are found through the parent registries and the scope
prefix (``mmseg.ASPPHead``) and are not listed here.

With ``--config``, only what that config's ``custom_imports`` registers is listed: the names its
modules (and their submodules) define, and any other name that importing them added. A module
that cannot be imported is named with where plugins are looked for (``docs/plugins.md``).
"""
import argparse
import sys
from typing import Dict, List, Optional, Sequence

#: Where the plugin documentation is, for messages.
PLUGIN_DOCS = 'docs/plugins.md'


def _registries(names: Optional[Sequence[str]] = None) -> dict:
    """The registries by lower-case name, the ones named (all without names), imported.

    Raises:
        KeyError: An unknown registry name (the message lists the known ones).
    """
    from mmengine.registry import Registry

    from medtrans import registry
    from medtrans.setup_env import register_all_modules

    register_all_modules(init_default_scope=False)
    registries = {name.lower(): getattr(registry, name) for name in registry.__all__
                  if isinstance(getattr(registry, name), Registry)}
    unknown = [n for n in names or [] if n.lower() not in registries]
    if unknown:
        raise KeyError(f'unknown registr{"y" if len(unknown) == 1 else "ies"} '
                       f'{", ".join(unknown)}; known: {", ".join(registries)}')
    chosen = {n.lower(): registries[n.lower()] for n in names} if names else registries
    for reg in chosen.values():
        reg.import_from_location()
    return chosen


def _listing(name: str, modules: Dict[str, type], head: str) -> List[str]:
    width = max((len(k) for k in modules), default=0)
    return [f'{name} ({len(modules)} {head})'] + [
        f'  {key:<{width}}  {modules[key].__module__}' for key in sorted(modules)]


def list_registered(names: Optional[List[str]] = None) -> str:
    """The listing printed by ``python -m medtrans list``.

    Raises:
        KeyError: An unknown registry name (the message lists the known ones).
    """
    lines = []
    for name, registry in _registries(names).items():
        lines += _listing(name, registry.module_dict, f'in scope {registry.scope!r}')
    return '\n'.join(lines)


def _inside(module: str, packages: Sequence[str]) -> bool:
    return any(module == p or module.startswith(p + '.') for p in packages)


def list_config_imports(config: str, names: Optional[List[str]] = None) -> str:
    """The listing printed by ``python -m medtrans list --config CONFIG``.

    Args:
        config (str): A config file.
        names (list[str], optional): Registries to look in (default: all).

    Returns:
        str: The config's ``custom_imports``, then, per registry that gained names from them,
        each name with its module.

    Raises:
        KeyError: An unknown registry name.
        ImportError: A module of ``custom_imports`` cannot be imported; the message says where
            plugin modules are looked for.
    """
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings

    registries = _registries(names)
    before = {name: set(reg.module_dict) for name, reg in registries.items()}
    custom = Config.fromfile(config, import_custom_modules=False).get('custom_imports') or {}
    imports = custom.get('imports', [])
    imports = [imports] if isinstance(imports, str) else list(imports)
    if not imports:
        return (f'{config} has no custom_imports: its types are medtrans\' own and those of the '
                'installed plugins (python -m medtrans list).')
    try:
        import_modules_from_strings(**custom)  # as Config.fromfile does in every tool
    except ImportError as err:
        # MMEngine's message names the module; the error it caught says why.
        reason = err.__cause__ or err.__context__ or err
        raise ImportError(
            f'{config}: custom_imports {imports} could not be imported ({reason}). A plugin '
            'module is found as an installed package (pip install -e PATH), or as a module in '
            'a plain folder named on PYTHONPATH (PYTHONPATH=/path/to/folder python ...); see '
            f'{PLUGIN_DOCS}.') from None
    lines = [f'{config}: custom_imports {imports}']
    for name, registry in registries.items():
        found = {key: cls for key, cls in registry.module_dict.items()
                 if key not in before[name] or _inside(cls.__module__, imports)}
        if found:
            lines += _listing(name, found, 'from custom_imports')
    if len(lines) == 1:
        lines.append('  (nothing registered' + (f' in {", ".join(registries)}' if names else '')
                     + ')')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m medtrans', description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    listing = commands.add_parser('list', help='list what is registered (plugins included)')
    listing.add_argument('registries', nargs='*', help='e.g. models datasets (default: all)')
    listing.add_argument('--config', help="list only what this config's custom_imports register")
    args = parser.parse_args(argv)
    try:
        if args.config:
            print(list_config_imports(args.config, args.registries))
        else:
            print(list_registered(args.registries))
    except (KeyError, ImportError) as error:
        print(f'python -m medtrans list: {error.args[0]}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
