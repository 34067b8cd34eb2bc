"""The study specs, the runner's skip / resume / stop logic and cluster scripts, and one real
study run end to end (train, test of the best checkpoint, summary)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from medtrans.analysis.paper import PAPER_RESULTS
from medtrans.analysis.study import (
    RUN_RECORD,
    cluster_script,
    load_study,
    run_commands,
    run_status,
    run_study,
)
from medtrans.registry import DATASETS
from medtrans.testing import write_synthetic_layout

SPECS = {'table1': 300, 'table2': 20, 'table3': 30, 'table4': 150, 'table5': 50}


def test_shipped_specs_expand_to_every_cell_and_cover_the_papers_numbers(repo_root):
    os.chdir(repo_root)
    cells = {}
    for name, count in SPECS.items():
        study = load_study(f'configs/studies/{name}.py')
        assert len(study.runs) == count
        assert study.work_root == f'work_dirs/studies/{name}'
        for run in study.runs:
            cells[(run.table, run.row, run.column)] = run.config
    assert set(PAPER_RESULTS) <= set(cells)
    assert cells[('Table 1', 'ImageNet+DINO Swin-T', 'PCam')] == \
        'configs/classification/swin-t/swin-t_in1k-dino_1xb64_plateau_pcam-224.py'
    assert cells[('Table 3', 'random DeiT-S', 'CheXpert')] == \
        'configs/knn/deit-s/knn_deit-s_random_1xb64_chexpert-224.py'
    assert cells[('Table 5', 'DeiT-S 8x8', 'CBIS-DDSM')] == \
        'configs/classification/deit-s-p8/deit-s-p8_in1k_1xb64_plateau_cbis-ddsm-224.py'
    assert cells[('Table 2', 'DeepLabV3 DeiT-S', 'ISIC2018')] == \
        'configs/deeplab3_deit_s_isic2018.py'


@pytest.mark.parametrize('name', ['table1', 'table3'])
def test_every_dino_initialised_cell_has_its_pretraining_in_the_spec(repo_root, name):
    from mmengine.config import Config
    os.chdir(repo_root)
    study = load_study(f'configs/studies/{name}.py')
    exports = {p.export: p.config for p in study.pretraining}
    needed = {Config.fromfile(run.config).get('pretrained') for run in study.runs
              if 'ImageNet+DINO' in run.row}
    assert needed == set(exports)  # each pretraining serves a cell, each cell has one
    for export, config in exports.items():
        assert os.path.basename(export) == os.path.basename(config)[:-3] + '.safetensors'


def _spec(tmp_path, repo_root, configs, seeds=(0, 1), pretraining=''):
    cells = ',\n'.join(
        f"dict(table='T', row='r{i}', column='c', config='{config}')"
        for i, config in enumerate(configs))
    spec = tmp_path / 'spec.py'
    spec.write_text(f"work_root = '{tmp_path / 'work'}'\nseeds = {list(seeds)}\n"
                    f'cells = [{cells}]\n{pretraining}')
    return str(spec)


def test_runner_skips_done_runs_resumes_started_ones_and_stops_at_a_failure(tmp_path, repo_root):
    os.chdir(repo_root)
    cls = 'configs/classification/deit-s/deit-s_in1k_1xb64_plateau_aptos2019-224.py'
    knn = 'configs/knn/deit-s/knn_deit-s_in1k_1xb64_aptos2019-224.py'
    dino = 'configs/dino/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.py'
    export = tmp_path / 'dino.safetensors'
    pretraining = f"pretraining = [dict(config='{dino}', export='{export}')]\n"
    study = load_study(_spec(tmp_path, repo_root, [cls, knn], pretraining=pretraining))
    assert [run_status(r) for r in study.runs] == ['todo'] * 4
    executed, lines = [], []

    def execute(command, log):
        executed.append(command)
        if 'seed1' in command and 'knn_eval' in command:
            return 1
        if 'tools/test.py' in command or 'knn_eval.py' in command:
            work_dir = command.split('--work-dir ')[1].split()[0]
            os.makedirs(f'{work_dir}/metrics', exist_ok=True)
            open(f'{work_dir}/metrics/test_latest.json', 'w').write('{}')
        if 'export_backbone.py' in command:
            open(command.split()[-1], 'w').close()
        return 0

    with pytest.raises(RuntimeError, match='knn_eval.py .*seed1.* failed; see .*study.log'):
        run_study(study, python='PY', execute=execute, print_fn=lines.append)
    assert [run_status(r) for r in study.runs] == ['done', 'done', 'done', 'started']
    pre = study.pretraining[0]
    assert run_status(pre) == 'done'
    assert executed[:2] == [f'PY tools/train.py {dino} --work-dir {pre.work_dir}',
                            f'PY tools/misc/export_backbone.py {pre.work_dir} {export}']
    del executed[:2]
    del lines[1]
    train, test = executed[:2]
    assert train.startswith(f'PY tools/train.py {cls} --work-dir {study.runs[0].work_dir}')
    assert train.endswith('--cfg-options randomness.seed=0')  # nothing to resume from
    assert test == (f'PY tools/test.py {cls} "$(ls -t {study.runs[0].work_dir}/best_*.pth | '
                    f'head -n 1)" --work-dir {study.runs[0].work_dir} --out '
                    f'{study.runs[0].work_dir}/predictions.csv')
    assert executed[4] == f'PY tools/knn_eval.py {knn} --work-dir {study.runs[2].work_dir}'
    assert lines[0].startswith('study spec: 4 runs after 1 pretrainings, 0 done, 5 to run')
    assert lines[1].startswith('[2/5] deit-s_in1k_1xb64_plateau_aptos2019-224 seed 0 (todo) '
                               'T | r0 | c: 3 left after this')
    assert 'ETA' in lines[2]
    record = json.load(open(f'{study.runs[1].work_dir}/{RUN_RECORD}'))
    assert (record['seed'], record['metric'], record['config']) == (1, 'kappa', cls)
    assert set(record['versions']) >= {'torch', 'mmengine', 'mmpretrain', 'timm', 'medtrans'}

    # Again: only the failed run, resumed from its checkpoint when it has one.
    executed.clear()
    open(f'{study.runs[0].work_dir}/iter_3.pth', 'w').close()  # done runs stay done
    counts = run_study(study, python='PY', execute=lambda c, log: executed.append(c) or 0,
                       print_fn=lines.append)
    assert executed == [f'PY tools/knn_eval.py {knn} --work-dir {study.runs[3].work_dir}']
    assert counts == {'done': 4, 'started': 1, 'todo': 0}  # the fake wrote no metrics

    os.remove(f'{study.runs[0].work_dir}/metrics/test_latest.json')
    assert run_commands(study.runs[0])[0].endswith('randomness.seed=0 --resume')


def test_cluster_scripts(tmp_path, repo_root):
    os.chdir(repo_root)
    seg = 'configs/deeplab3_deit_s_isic2018.py'
    study = load_study(_spec(tmp_path, repo_root, [seg], seeds=[2]))
    work = study.runs[0].work_dir
    script = cluster_script(study, 'pytorch', gpus=8)
    assert f'bash tools/dist_train.sh {seg} 8 --work-dir {work} --auto-scale-lr --cfg-options ' \
        'randomness.seed=2\n' in script
    assert f'bash tools/dist_test.sh {seg} "$(ls -t {work}/best_*.pth | head -n 1)" 8 ' \
        f'--work-dir {work} --out {work}/predictions.csv\n' in script
    assert os.path.isfile(f'{work}/{RUN_RECORD}')
    script = cluster_script(study, 'slurm', gpus=4, partition='gpu', python='py3')
    assert f'GPUS=4 GPUS_PER_NODE=4 PYTHON=py3 bash tools/slurm_train.sh gpu ' \
        f'deeplab3_deit_s_isic2018-s2 {seg} --work-dir {work} --auto-scale-lr ' in script
    assert 'srun -p gpu --job-name=deeplab3_deit_s_isic2018-s2-test --gres=gpu:1 --ntasks=1 ' \
        f'py3 -u tools/test.py {seg}' in script
    # One GPU: the cell's own recipe, unscaled.
    assert '--auto-scale-lr' not in cluster_script(study, 'pytorch', gpus=1)
    with pytest.raises(ValueError, match="launcher 'slurm' needs a partition"):
        cluster_script(study, 'slurm')


@pytest.mark.slow
def test_a_study_runs_end_to_end_and_is_summarised(tmp_path, repo_root):
    data = tmp_path / 'aptos'
    write_synthetic_layout(DATASETS.get('APTOS2019Dataset'), str(data))
    config = tmp_path / 'tiny.py'
    config.write_text(
        f"_base_ = ['{repo_root}/tests/data/configs/tiny_cls_deit_aptos2019.py']\n"
        f"data_root = '{data}'\n"
        'train_cfg = dict(max_iters=2, val_interval=2)\n'
        'default_hooks = dict(checkpoint=dict(interval=2))\n'
        'train_dataloader = dict(num_workers=0, persistent_workers=False,\n'
        '                        dataset=dict(data_root=data_root))\n'
        'val_dataloader = dict(num_workers=0, persistent_workers=False,\n'
        '                      dataset=dict(data_root=data_root))\n'
        'test_dataloader = dict(num_workers=0, persistent_workers=False,\n'
        '                       dataset=dict(data_root=data_root))\n')
    spec = _spec(tmp_path, repo_root, [str(config)], seeds=[3])
    run = [sys.executable, 'tools/run_study.py', spec]
    proc = subprocess.run(run, cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'study spec: 1 done, 0 started, 0 todo' in proc.stdout
    work = tmp_path / 'work' / 'tiny' / 'seed3'
    metrics = json.load(open(work / 'metrics' / 'test_latest.json'))
    assert metrics['checkpoint'].startswith(str(work / 'best_kappa_iter_2'))
    assert (work / 'predictions.csv').is_file()
    checkpoint = torch.load(metrics['checkpoint'], map_location='cpu', weights_only=True)
    assert checkpoint['meta']['seed'] == 3  # the run's seed reached the Runner

    again = subprocess.run(run, cwd=repo_root, capture_output=True, text=True)
    assert 'study spec: 1 runs, 1 done, 0 to run' in again.stdout

    out = tmp_path / 'summary'
    proc = subprocess.run([sys.executable, 'tools/analysis/summarize.py', str(tmp_path / 'work'),
                           '--out-dir', str(out), '--bootstrap', '20'], cwd=repo_root,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kappa = metrics['metrics']['kappa']
    assert f'| r0 | {kappa:.3f} +- 0.000 (1) [' in (out / 't.md').read_text()
