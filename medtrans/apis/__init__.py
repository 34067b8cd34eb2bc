from medtrans.engine.distributed import closing_process_group

from .cli import (
    ToolRun,
    add_config_args,
    add_debug_arg,
    add_launcher_args,
    load_config,
    retarget_options,
)
from .export import export_backbone
from .inference import (
    extract_features,
    image_ids,
    infer_to_dir,
    inference,
    init_model,
    list_images,
    model_inputs,
    sliding_window,
)
from .knn import is_runner_checkpoint, knn_evaluate, prepare_knn_config
from .preflight import PreflightError, check_before_run, check_checkpoint
from .retarget import check_overrides, retarget
from .run import (
    VIS_BACKENDS,
    build_runner,
    check_work_dir,
    prepare_config,
    set_batch_size,
    use_first_batches,
)
from .test_outputs import (
    enable_mask_export,
    enable_predictions_csv,
    enable_show_dir,
    read_only_tested_split,
    test_summary,
)

__all__ = [
    'prepare_config', 'build_runner', 'enable_show_dir', 'closing_process_group', 'check_work_dir',
    'add_config_args', 'add_launcher_args', 'load_config', 'enable_predictions_csv',
    'enable_mask_export', 'prepare_knn_config', 'is_runner_checkpoint', 'knn_evaluate',
    'export_backbone', 'read_only_tested_split', 'retarget', 'retarget_options', 'check_overrides',
    'init_model', 'inference', 'extract_features', 'infer_to_dir', 'sliding_window', 'list_images',
    'model_inputs', 'image_ids', 'ToolRun', 'add_debug_arg', 'PreflightError',
    'check_before_run', 'check_checkpoint', 'VIS_BACKENDS', 'set_batch_size', 'use_first_batches',
    'test_summary'
]
