"""Study specs, recipes and plans: what each job runs, on how many GPUs, at which batch and LR,
after which jobs, by which commands; and the torchrun script made from a plan (Slurm:
test_study_slurm.py)."""
import json
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from medtrans.analysis.paper import PAPER_RESULTS
from medtrans.analysis.study import (
    RUN_RECORD,
    Placement,
    Recipe,
    build_plan,
    cluster_script,
    load_study,
    parse_only,
    place_recipe,
    read_recipe,
    versions,
)

SPECS = {'table1': 300, 'table2': 20, 'table3': 70, 'table4': 150, 'table5': 50}
DINO = 'configs/dino/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.py'
DINO_EXPORT = 'checkpoints/dino/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.safetensors'
CELL = 'configs/classification/deit-s/deit-s_in1k-dino_1xb64_plateau_aptos2019-224.py'
RANDOM = 'configs/classification/deit-s/deit-s_random_1xb64_plateau_aptos2019-224.py'
KNN_RANDOM = 'configs/knn/deit-s/knn_deit-s_random_1xb64_aptos2019-224.py'
HEADLINE = 'configs/deeplab3_deit_s_isic2018.py'


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
    assert cells[('Table 2', 'DeepLabV3 DeiT-S', 'ISIC2018')] == HEADLINE


def test_table3_random_rows_are_five_initialisations_and_the_others_one_run(repo_root):
    os.chdir(repo_root)
    seeds = {}
    for run in load_study('configs/studies/table3.py').runs:
        seeds.setdefault((run.row, run.column), []).append(run.seed)
    assert {cell: s for cell, s in seeds.items() if cell[0].startswith('random')} == {
        (f'random {m}', d): [0, 1, 2, 3, 4] for m in ('ResNet50', 'DeiT-S')
        for d in ('APTOS2019', 'CBIS-DDSM', 'ISIC2019', 'CheXpert', 'PCam')}
    assert all(s == [0] for cell, s in seeds.items() if not cell[0].startswith('random'))


@pytest.mark.parametrize('name', ['table1', 'table3'])
def test_every_dino_initialised_cell_has_its_pretraining_in_the_spec(repo_root, name):
    os.chdir(repo_root)
    study = load_study(f'configs/studies/{name}.py')
    exports = {p.export: p.config for p in study.pretraining}
    needed = {Config.fromfile(run.config).get('pretrained') for run in study.runs
              if 'ImageNet+DINO' in run.row}
    assert needed == set(exports)  # each pretraining serves a cell, each cell has one
    for export, config in exports.items():
        assert os.path.basename(export) == os.path.basename(config)[:-3] + '.safetensors'


def test_recipes_come_from_the_name_checked_against_batch_and_base_batch(repo_root, tmp_path):
    os.chdir(repo_root)
    for path, recipe in [(DINO, Recipe(4, 64)), (RANDOM, Recipe(1, 64)),
                         ('configs/deeplabv3/deeplabv3_r50-d8_1xb8_plateau_csaw-s-512x512.py',
                          Recipe(1, 8)), (HEADLINE, Recipe(1, 8))]:  # no NxbM: from its fields
        assert read_recipe(Config.fromfile(path), path) == recipe
    assert Recipe(4, 64).total_batch == 256
    wrong = tmp_path / 'deit-s_random_1xb64_plateau_aptos2019-224.py'
    wrong.write_text(f"_base_ = ['{repo_root / RANDOM}']\ntrain_dataloader = dict(batch_size=32)\n")
    with pytest.raises(ValueError, match=r'says 1xb64 .*batch_size is 32 and '
                       r'auto_scale_lr.base_batch_size 64'):
        read_recipe(Config.fromfile(str(wrong)), str(wrong))
    unnamed = tmp_path / 'mine.py'
    unnamed.write_text(f"_base_ = ['{repo_root / RANDOM}']\n"
                       'train_dataloader = dict(batch_size=32)\n'
                       'auto_scale_lr = dict(base_batch_size=128)\n')
    assert read_recipe(Config.fromfile(str(unnamed)), str(unnamed)) == Recipe(4, 32)


@pytest.mark.parametrize('gpus, accumulates, placement', [
    (None, True, Placement(4, 64, 1)),  # a cluster: the recipe's GPUs
    (8, True, Placement(4, 64, 1)),  # more GPUs: the recipe's; the rest run other jobs
    (4, False, Placement(4, 64, 1)),
    (3, True, Placement(2, 64, 2)),  # the largest divisor of 4 that fits, then accumulation
    (1, True, Placement(1, 64, 4)),
    (1, False, Placement(1, 256, 1)),  # DINO refuses accumulation: a larger per-GPU batch
    (0, False, Placement(0, 256, 1)),  # the CPU: one process
])
def test_a_placement_keeps_the_total_batch(gpus, accumulates, placement):
    assert place_recipe(Recipe(4, 64), gpus, accumulates) == placement
    assert placement.total_batch == 256


def _recipe_view(plan):
    return {job.name: (job.gpus, job.batch_per_gpu, job.accumulate, job.total_batch, job.lr)
            for job in plan.jobs}


def test_table1_plans_keep_dino_at_256_and_1e4_and_the_cells_at_64_on_1_and_8_gpus(
        repo_root, tmp_path):
    os.chdir(repo_root)
    work = str(tmp_path / 'work')
    study = load_study('configs/studies/table1.py', work)
    plans = {gpus: build_plan(study, gpus=gpus) for gpus in (1, 8)}
    for gpus, dino in ((8, (4, 64, 1, 256, 1e-4)), (1, (1, 256, 1, 256, 1e-4))):
        expected = {}
        for job in plans[gpus].jobs:
            if job.kind == 'pretraining':
                expected[job.name] = dino
            else:
                expected[job.name] = (1, 64, 1, 64, 1e-3 if '_random_' in job.config else 1e-4)
        assert _recipe_view(plans[gpus]) == expected
        assert len(plans[gpus].jobs) == 320
    dino_work = f'{work}/pretraining/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96'
    dino = plans[8].job('pretraining/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96').to_json('PY')
    assert dino.pop('status') == ('done' if os.path.isfile(DINO_EXPORT) else 'todo')
    assert dino == {
        'name': 'pretraining/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96',
        'kind': 'pretraining', 'config': DINO, 'seed': 0, 'gpus': 4, 'batch_per_gpu': 64,
        'accumulate': 1, 'total_batch': 256, 'lr': 1e-4, 'after': [], 'work_dir': dino_work,
        'export': DINO_EXPORT, 'commands': [
            f'bash tools/dist_train.sh {DINO} 4 --work-dir {dino_work} --resume',
            f'PY tools/misc/export_backbone.py {dino_work} {DINO_EXPORT}']}
    one_gpu = plans[1].job(dino['name']).to_json('PY')['commands'][0]
    assert one_gpu == (f'PY tools/train.py {DINO} --work-dir {dino_work} --resume '
                       '--cfg-options train_dataloader.batch_size=256')
    cell_work = f'{work}/deit-s_in1k-dino_1xb64_plateau_aptos2019-224/seed3'
    for gpus in (1, 8):
        cell = plans[gpus].job('deit-s_in1k-dino_1xb64_plateau_aptos2019-224/seed3').to_json('PY')
        assert cell == {
            'name': 'deit-s_in1k-dino_1xb64_plateau_aptos2019-224/seed3', 'kind': 'cell',
            'config': CELL, 'seed': 3, 'gpus': 1, 'batch_per_gpu': 64, 'accumulate': 1,
            'total_batch': 64, 'lr': 1e-4, 'after': [dino['name']], 'work_dir': cell_work,
            'status': 'todo', 'table': 'Table 1', 'row': 'ImageNet+DINO DeiT-S',
            'column': 'APTOS2019', 'commands': [
                f'PY tools/train.py {CELL} --work-dir {cell_work} --resume --cfg-options '
                'randomness.seed=3',
                f'PY tools/test.py {CELL} "$(ls -t {cell_work}/best_*.pth | head -n 1)" '
                f'--work-dir {cell_work} --out {cell_work}/predictions.csv']}
    assert plans[1].job('deit-s_random_1xb64_plateau_aptos2019-224/seed0').after == []


def test_the_tool_writes_the_plan_as_json_and_prints_it(repo_root, tmp_path):
    os.chdir(repo_root)
    work, out = str(tmp_path / 'work'), tmp_path / 'plan.json'
    proc = subprocess.run(
        [sys.executable, 'tools/run_study.py', 'configs/studies/table1.py', '--dry-run',
         '--gpus', '8', '--plan', str(out), '--work-root', work, '--only', 'model=deit-s',
         '--only', 'dataset=aptos2019,pcam'], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = build_plan(load_study('configs/studies/table1.py', work), gpus=8,
                      only=parse_only(['model=deit-s', 'dataset=aptos2019,pcam']))
    assert json.loads(out.read_text()) == json.loads(json.dumps(plan.to_json(sys.executable)))
    assert len(plan.jobs) == 2 + 2 * 3 * 5  # the DeiT-S DINO runs, then the cells
    printed = [line for line in proc.stdout.splitlines() if ' - mmengine - ' not in line]
    assert printed == plan.describe(sys.executable)
    assert not os.path.exists(work)  # nothing written


def test_the_plan_of_table3_evaluates_each_random_seed_as_its_own_initialisation(
        repo_root, tmp_path):
    os.chdir(repo_root)
    work = str(tmp_path / 'work')
    plan = build_plan(load_study('configs/studies/table3.py', work), gpus=1,
                      only=parse_only(['model=DeiT-S', 'dataset=APTOS2019']))
    assert [job.name for job in plan.jobs] == [
        'pretraining/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96',
        *[f'knn_deit-s_random_1xb64_aptos2019-224/seed{s}' for s in range(5)],
        'knn_deit-s_in1k_1xb64_aptos2019-224/seed0',
        'knn_deit-s_in1k-dino_1xb64_aptos2019-224/seed0']
    job = plan.job('knn_deit-s_random_1xb64_aptos2019-224/seed3')
    run_dir = f'{work}/knn_deit-s_random_1xb64_aptos2019-224/seed3'
    assert job.commands('PY') == [
        f'PY tools/knn_eval.py {KNN_RANDOM} --work-dir {run_dir} --out {run_dir}/predictions.csv '
        '--cfg-options randomness.seed=3']
    assert (job.lr, job.accumulate, job.record['seed'], job.record['knn']) == (None, 1, 3, True)
    assert plan.jobs[-1].after == ['pretraining/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96']


def test_filters_data_roots_weights_and_options_reach_the_commands(repo_root, tmp_path):
    os.chdir(repo_root)
    work = str(tmp_path / 'work')
    study = load_study('configs/studies/table1.py', work)
    plan = build_plan(study, gpus=0, only=parse_only(['model=deit-s', 'dataset=aptos2019',
                                                      'init=ImageNet', 'seed=1']),
                      data_roots={'APTOS2019': '/data/aptos'}, weights_dir='/w',
                      cfg_options=['train_cfg.max_iters=10'])
    run_dir = f'{work}/deit-s_in1k_1xb64_plateau_aptos2019-224/seed1'
    config = 'configs/classification/deit-s/deit-s_in1k_1xb64_plateau_aptos2019-224.py'
    retargets = '--data-root /data/aptos --pretrained /w/deit_small_patch16_224.fb_in1k.safetensors'
    assert [job.name for job in plan.jobs] == ['deit-s_in1k_1xb64_plateau_aptos2019-224/seed1']
    assert plan.jobs[0].commands('PY') == [
        f'PY tools/train.py {config} --work-dir {run_dir} --resume {retargets} --cfg-options '
        'randomness.seed=1 train_cfg.max_iters=10',
        f'PY tools/test.py {config} "$(ls -t {run_dir}/best_*.pth | head -n 1)" --work-dir '
        f'{run_dir} --out {run_dir}/predictions.csv {retargets} --cfg-options '
        'train_cfg.max_iters=10']
    assert plan.jobs[0].gpus == 0 and plan.jobs[0].total_batch == 64  # the CPU: one process
    with pytest.raises(ValueError, match=r'no axis "size" \(its axes: dataset, init, model, '
                       r'seed\)'):
        build_plan(study, only=parse_only(['size=big']))
    with pytest.raises(ValueError, match='model=deit-x: no run of table1 has it'):
        build_plan(study, only=parse_only(['model=deit-x']))
    with pytest.raises(ValueError, match='no job of table1 has the dataset "aptos"'):
        build_plan(study, data_roots={'aptos': '/data'})
    with pytest.raises(ValueError, match='randomness.seed=...: the study sets it'):
        build_plan(study, cfg_options=['randomness.seed=3'])
    with pytest.raises(ValueError, match='train_dataloader.batch_size=...: the study sets it'):
        build_plan(study, cfg_options=['train_dataloader.batch_size=32'])
    with pytest.raises(ValueError, match='data_root=...: `data_root` is a variable of the '
                       'config file.*Use --data-root'):  # as the tools would, before any run
        build_plan(study, cfg_options=['data_root=/data'])
    # A batch changed on purpose, with the LR scaled linearly.
    scaled = build_plan(study, gpus=1, only=parse_only(['model=deit-s', 'dataset=aptos2019',
                                                        'init=random', 'seed=0']),
                        cfg_options=['train_dataloader.batch_size=32'], auto_scale_lr=True)
    assert _recipe_view(scaled) == {
        'deit-s_random_1xb64_plateau_aptos2019-224/seed0': (1, 32, 1, 32, 1e-3 * 32 / 64)}
    assert '--resume --auto-scale-lr --cfg-options randomness.seed=0 ' \
        'train_dataloader.batch_size=32' in scaled.jobs[0].commands()[0]


def test_smoke_plans_run_every_job_small_with_exports_in_the_work_root(repo_root, tmp_path):
    os.chdir(repo_root)
    work = str(tmp_path / 'work')
    study = load_study('configs/studies/table1.py', work)
    only = parse_only(['model=deit-s,inception', 'dataset=aptos2019', 'seed=0'])
    plan = build_plan(study, gpus=8, only=only, smoke=True)
    assert len(plan.jobs) == 2 + 2 * 3
    export = f'{work}/exports/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96.safetensors'
    dino = plan.job('pretraining/dino_deit-s_in1k_4xb64_300e_aptos2019-224-96')
    assert dino.commands('PY') == [
        f'bash tools/dist_train.sh {DINO} 4 --work-dir {dino.work_dir} --resume --img-size 64 '
        '--cfg-options train_dataloader.batch_size=4 train_dataloader.dataset.indices=16 '
        'val_dataloader.dataset.indices=16 val_dataloader.batch_size=4 train_cfg.max_epochs=1 '
        'train_cfg.val_begin=1 train_cfg.val_interval=1 default_hooks.checkpoint.interval=4 '
        'default_hooks.logger.interval=1',
        f'PY tools/misc/export_backbone.py {dino.work_dir} {export}']
    # Sizes --img-size accepts: DINO's local crops of 96/224 rounded to DeiT's patches of 16,
    # Inception-v3's least input of 75 (its local crops too: 174 for DINO).
    sizes = {job.name: job.record.get('img_size') for job in plan.jobs}
    assert sizes['pretraining/dino_inception-v3_in1k_4xb64_300e_aptos2019-224-96'] == 174
    assert sizes['inception-v3_in1k_1xb64_plateau_aptos2019-224/seed0'] == 75
    assert sizes['deit-s_in1k_1xb64_plateau_aptos2019-224/seed0'] == 64
    cell = plan.job('deit-s_in1k-dino_1xb64_plateau_aptos2019-224/seed0')
    assert f'--pretrained {export} --img-size 64' in cell.commands()[0]
    assert cell.commands()[1].startswith(
        f'python tools/test.py {CELL} "$( ( ls -t {cell.work_dir}/best_*.pth 2>/dev/null || '
        f'ls -t {cell.work_dir}/*.pth ) | head -n 1)"')
    # A smoke run's results are never taken for a full run's, nor the reverse.
    os.makedirs(cell.work_dir)
    with open(f'{cell.work_dir}/{RUN_RECORD}', 'w') as f:
        json.dump(cell.record, f)
    with pytest.raises(ValueError, match='holds a smoke run; a full run must not take'):
        build_plan(study, gpus=8, only=only)


def test_cluster_scripts_run_each_job_on_its_recipes_gpus(repo_root, tmp_path):
    os.chdir(repo_root)
    if os.path.isfile(DINO_EXPORT):
        pytest.skip(f'{DINO_EXPORT} exists: its pretraining is done')
    spec = tmp_path / 'spec.py'
    spec.write_text(f"work_root = '{tmp_path / 'work'}'\nseeds = [2]\n"
                    f"cells = [dict(table='T', row='r', column='c', config='{CELL}')]\n"
                    f"pretraining = [dict(config='{DINO}', export='{DINO_EXPORT}')]\n")
    study = load_study(str(spec))
    work = study.runs[0].work_dir
    pre = study.pretraining[0].work_dir
    script = cluster_script(build_plan(study), python='py3')
    assert script.splitlines()[3:] == [
        f'# pretraining/{os.path.basename(DINO)[:-3]}: -> {DINO_EXPORT}; 4 GPU(s), '
        'batch 4x64x1 = 256',
        f'bash tools/dist_train.sh {DINO} 4 --work-dir {pre} --resume',
        f'py3 tools/misc/export_backbone.py {pre} {DINO_EXPORT}',
        f'# {os.path.basename(CELL)[:-3]}/seed2: T | r | c; 1 GPU(s), batch 1x64x1 = 64',
        f'py3 tools/train.py {CELL} --work-dir {work} --resume --cfg-options randomness.seed=2',
        f'py3 tools/test.py {CELL} "$(ls -t {work}/best_*.pth | head -n 1)" --work-dir {work} '
        f'--out {work}/predictions.csv']
    assert os.path.isfile(f'{work}/{RUN_RECORD}')


def test_records_name_package_versions_by_distribution():
    import mmcv
    import mmseg
    found = versions()
    assert found['mmsegmentation'] == mmseg.__version__
    assert found.get('mmcv-lite', found.get('mmcv')) == mmcv.__version__
    assert 'mmseg' not in found and found['timm'] is not None
