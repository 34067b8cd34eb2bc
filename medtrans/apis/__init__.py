from .run import build_runner, close_distributed, enable_show_dir, fill_work_dir, prepare_config

__all__ = ['prepare_config', 'build_runner', 'fill_work_dir', 'enable_show_dir', 'close_distributed']
