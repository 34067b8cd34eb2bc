"""What the k-NN tests share: a tiny APTOS tree, tiny DeiT configs, weight files, and the
reference computation of k-NN metrics from embeddings extracted outside the Runner."""
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

from medtrans.apis import enable_predictions_csv, knn_evaluate, load_config, prepare_knn_config
from medtrans.evaluation.functional import accuracy, cohen_kappa, knn_scores
from medtrans.models.utils import save_state_dict
from medtrans.registry import DATASETS, MODELS
from medtrans.testing import write_csv, write_images

REPO = Path(__file__).resolve().parents[2]
APTOS_CONFIG = REPO / 'configs' / 'classification' / 'deit-s' / (
    'deit-s_random_1xb64_plateau_aptos2019-224.py')
SIZE = 32
BATCH = 8
K = 10
TEMPERATURE = 0.1


def write_aptos(root: Path, num_images: int = 40) -> Path:
    """An APTOS 2019 tree (official layout) of 32x32 noise images, grades 0..4 in turn."""
    ids = [f'{i:012x}' for i in range(num_images)]
    write_csv(str(root / 'train.csv'),
              [('id_code', 'diagnosis'), *[(i, str(n % 5)) for n, i in enumerate(ids)]])
    write_images(str(root / 'train_images'), [f'{i}.png' for i in ids], seed=3, size=SIZE)
    return root


def tiny_options(data_root: Path) -> Dict[str, object]:
    """``--cfg-options`` turning a DeiT-S classification config into DeiT-tiny on 32x32 images
    from ``data_root``; the test pipeline resizes to 32 and crops 32."""
    options = {
        'model.backbone.arch': 'deit-tiny',
        'model.backbone.img_size': SIZE,
        'model.head.in_channels': 192,
        'test_dataloader.batch_size': BATCH,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
        'test_dataloader.dataset.pipeline.1.scale': (SIZE, SIZE),
        'test_dataloader.dataset.pipeline.2.crop_size': SIZE,
    }
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options[f'{loader}.dataset.data_root'] = str(data_root)
    return options


def cli_options(options: Dict[str, object]) -> List[str]:
    """The same options as ``--cfg-options`` arguments."""
    return [f'{key}={value}'.replace(' ', '') for key, value in options.items()]


def build_model(cfg: Config, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('medtrans'):
        model = MODELS.build(cfg.model)
    return model.eval()


def save_weights(model: torch.nn.Module, folder: Path) -> Dict[str, Path]:
    """The model's weights as a run checkpoint, a backbone export and a timm state dict."""
    paths = dict(runner=folder / 'run.pth', backbone=folder / 'backbone.safetensors',
                 timm=folder / 'timm.safetensors')
    torch.save(dict(meta=dict(iter=0), state_dict=model.state_dict()), paths['runner'])
    save_state_dict(model.backbone.state_dict(), str(paths['backbone']))
    save_state_dict(model.backbone.inner.state_dict(), str(paths['timm']))
    return paths


@torch.no_grad()
def embed(model: torch.nn.Module, dataset_cfg: dict, batch_size: int) -> Tuple[torch.Tensor, list]:
    """Embeddings of a dataset in order, batch by batch, outside any Runner or loop."""
    with DefaultScope.overwrite_default_scope('medtrans'):
        dataset = DATASETS.build(dataset_cfg)
    features, samples = [], []
    for start in range(0, len(dataset), batch_size):
        batch = pseudo_collate([dataset[i] for i in range(start, min(start + batch_size,
                                                                      len(dataset)))])
        data = model.data_preprocessor(batch, False)
        features.append(model.backbone.forward_embedding(data['inputs']))
        samples += data['data_samples']
    return torch.cat(features), samples


def reference_scores(model: torch.nn.Module, cfg: Config, num_classes: Optional[int] = None,
                     k: int = K, temperature: float = TEMPERATURE
                     ) -> Tuple[torch.Tensor, list, torch.Tensor]:
    """k-NN scores of the test set with the train set (test pipeline) as memory, the test
    data samples and the memory targets."""
    memory = dict(cfg.train_dataloader.dataset, pipeline=cfg.test_dataloader.dataset.pipeline,
                  test_mode=True)
    train, train_samples = embed(model, memory, BATCH)
    test, test_samples = embed(model, cfg.test_dataloader.dataset, BATCH)
    if num_classes is None:
        targets = torch.stack([s.gt_score for s in train_samples])
    else:
        targets = torch.cat([s.gt_label for s in train_samples])
    # Queries scored batch by batch, as the loop scores them.
    scores = knn_scores(train, targets, test, k, temperature, num_classes,
                        query_chunk_size=BATCH)
    return scores, test_samples, targets


def reference_kappa(model: torch.nn.Module, cfg: Config) -> Dict[str, float]:
    """What ``CohenKappaMetric`` should report for k-NN on the APTOS test split."""
    scores, samples, _ = reference_scores(model, cfg, num_classes=5)
    labels = torch.cat([s.gt_label for s in samples])
    return dict(kappa=cohen_kappa(scores, labels), accuracy=accuracy(scores, labels))


def run_knn(config: Path, options: Dict[str, object], work_dir: Path,
            checkpoint: Optional[Path] = None, out: Optional[Path] = None,
            **loop) -> Tuple[Config, Dict[str, float]]:
    """Run ``tools/knn_eval.py``'s function in this process; ``loop`` updates ``test_cfg``."""
    cfg = prepare_knn_config(load_config(str(config), options), str(config),
                             work_dir=str(work_dir), k=K, temperature=TEMPERATURE)
    cfg.test_cfg.update(loop)
    if out is not None:
        enable_predictions_csv(cfg, str(out))
    metrics = knn_evaluate(cfg, None if checkpoint is None else str(checkpoint))
    return cfg, metrics
