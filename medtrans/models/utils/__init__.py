from .checkpoint import (
                         load_state_dict_exactly,
                         read_backbone_weights,
                         read_state_dict,
                         save_state_dict,
)
from .manifest import MANIFEST_NAME, read_manifest, sha256_file, update_manifest, verify_weight_file
from .sync_batchnorm import CPUSyncBatchNorm, to_cpu_sync_batchnorm
from .timm_weights import STUDY_TIMM_WEIGHTS, SavedWeights, save_timm_weights, timm_weight_filename
from .weight_init import kaiming_init_

__all__ = [
    'read_state_dict', 'read_backbone_weights', 'load_state_dict_exactly', 'save_state_dict',
    'MANIFEST_NAME', 'sha256_file', 'read_manifest', 'update_manifest', 'verify_weight_file',
    'STUDY_TIMM_WEIGHTS', 'SavedWeights', 'save_timm_weights', 'timm_weight_filename',
    'kaiming_init_', 'CPUSyncBatchNorm', 'to_cpu_sync_batchnorm'
]
