"""medtrans registries: children of MMEngine's root registries, scope ``medtrans``.

A config with ``default_scope='medtrans'`` finds medtrans modules by bare name, MMEngine's and
MMCV's through the parent, and other packages' with their scope prefix (``mmseg.ASPPHead``).
``locations`` lets a registry import the modules that fill it on first lookup.
"""
from typing import Optional, Tuple, Type, Union

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

__all__ = [
    'RUNNERS', 'LOOPS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR', 'TASK_UTILS',
    'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'is_registered_subclass',
    'registered_class'
]

RUNNERS = Registry(
    'runner', parent=MMENGINE_RUNNERS, scope='medtrans', locations=['medtrans.engine'])
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope='medtrans', locations=['medtrans.engine'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='medtrans', locations=['medtrans.engine.hooks'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='medtrans', locations=['medtrans.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, scope='medtrans')
TRANSFORMS = Registry(
    'transform',
    parent=MMENGINE_TRANSFORMS,
    scope='medtrans',
    locations=['medtrans.datasets.transforms'])
MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='medtrans', locations=['medtrans.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='medtrans',
    locations=['medtrans.models'])
WEIGHT_INITIALIZERS = Registry(
    'weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS, scope='medtrans',
    locations=['medtrans.models'])
OPTIMIZERS = Registry(
    'optimizer', parent=MMENGINE_OPTIMIZERS, scope='medtrans', locations=['medtrans.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='medtrans',
    locations=['medtrans.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='medtrans', locations=['medtrans.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope='medtrans',
    locations=['medtrans.engine'])
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, scope='medtrans', locations=['medtrans.evaluation'])
EVALUATOR = Registry(
    'evaluator', parent=MMENGINE_EVALUATOR, scope='medtrans', locations=['medtrans.evaluation'])
TASK_UTILS = Registry(
    'task util', parent=MMENGINE_TASK_UTILS, scope='medtrans', locations=['medtrans.models'])
VISUALIZERS = Registry(
    'visualizer', parent=MMENGINE_VISUALIZERS, scope='medtrans',
    locations=['medtrans.visualization'])
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope='medtrans')
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS, scope='medtrans')


def registered_class(registry: Registry,
                     type_: Union[str, type, None],
                     scope: Optional[str] = 'medtrans') -> Optional[type]:
    """The class a config's ``type`` names, resolved as MMEngine builds it.

    A name is looked up in ``scope``'s child of ``registry``'s root and its parents (a scope
    prefix, ``'mmseg.X'``, picks another package's); a class is taken as it is.

    Args:
        registry (Registry): The registry that builds the config, e.g. ``LOOPS``.
        type_ (str | type | None): The config's ``type``.
        scope (str, optional): The scope it is built in (the config's ``default_scope``, or a
            ``_scope_`` above it). Defaults to 'medtrans'.

    Returns:
        type | None: The class; None for a name registered nowhere it is looked up.
    """
    if isinstance(type_, str):
        with registry.switch_scope_and_registry(scope) as scoped:
            type_ = scoped.get(type_)
    return type_ if isinstance(type_, type) else None


def is_registered_subclass(registry: Registry,
                           type_: Union[str, type, None],
                           base: Union[Type, Tuple[Type, ...]],
                           scope: Optional[str] = 'medtrans') -> bool:
    """Whether a config's ``type`` is ``base`` or a subclass of it, resolved as MMEngine builds it
    (:func:`registered_class`), so a plugin's subclass registered under its own name counts as
    well as ``base``'s registered name.

    Args:
        registry (Registry): The registry that builds the config, e.g. ``LOOPS``.
        type_ (str | type | None): The config's ``type``.
        base (type | tuple[type]): The class(es) to test against.
        scope (str, optional): The config's ``default_scope``. Defaults to 'medtrans'.

    Returns:
        bool: True for ``base`` or a subclass; False for another class or a name registered
        nowhere it is looked up.
    """
    found = registered_class(registry, type_, scope)
    return found is not None and issubclass(found, base)
