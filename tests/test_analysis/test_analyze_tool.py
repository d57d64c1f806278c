"""tools/analyze_param_groups.py: table, JSON plan, plot, warnings."""
import json
import os

import pytest

from helpers import load_tool

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
SIX_B = 'configs/intern_vit_6b/full_tuning/' \
        'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5.py'
SMALL = 'configs/vit/vit-tiny_upernet_layer-decay_demo.py'



def run(*args):
    return load_tool().main([os.path.join(ROOT, args[0]), *args[1:]])


def test_small_config_table_json_and_plot(tmp_path, capsys):
    report = run(SMALL, '--json', str(tmp_path / 'plan.json'), '--plot',
                 str(tmp_path / 'plan.png'))
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()
            if line.split()[:2][-1:] and line.split()[1:2]
            and line.split()[1].startswith('layer_')]
    assert rows[0] == ['0', 'layer_5_decay', '5', '1', '6.0000e-05', '0.05',
                       '23', '170,528']
    assert rows[-1] == ['11', 'layer_0_no_decay', '0', '0.116',
                        '6.9617e-06', '0', '2', '576']
    assert 'no warnings' in out
    plan = json.loads((tmp_path / 'plan.json').read_text())
    assert len(plan['groups']) == 12
    by_name = {p['name']: p for p in plan['params']}
    assert len(by_name) == 112
    assert by_name['backbone.cls_token']['weight_decay'] == 0.0
    assert by_name['backbone.cls_token']['layer_id'] == 0
    assert by_name['backbone.layers.3.ffn.layers.0.0.weight']['lr'] == \
        pytest.approx(6e-5 * 0.65)
    assert by_name['decode_head.conv_seg.weight']['in_backbone'] is False
    # which rule placed each parameter, and why no weight decay
    assert by_name['backbone.cls_token']['placed_by'] == \
        'ViT rule (backbone.layers)'
    assert by_name['backbone.cls_token']['no_decay_reason'] == 'token'
    assert by_name['decode_head.conv_seg.weight']['placed_by'] == \
        'outside the backbone: N + 1 = 5'
    assert by_name['decode_head.conv_seg.weight']['no_decay_reason'] is None
    png = (tmp_path / 'plan.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 5000
    assert report['frozen'] == []


def test_warnings_for_suspicious_plans(tmp_path, capsys):
    # MMEngine's default constructor with a custom key that decays the head
    # lr and keeps weight decay off a 2-D weight
    config = tmp_path / 'suspicious.py'
    config.write_text(
        f"_base_ = [{os.path.abspath(os.path.join(ROOT, SMALL))!r}]\n"
        'optim_wrapper = dict(_delete_=True, type="OptimWrapper",\n'
        '    optimizer=dict(type="AdamW", lr=1e-4, weight_decay=0.05),\n'
        '    paramwise_cfg=dict(custom_keys=dict(\n'
        '        conv_seg=dict(lr_mult=0.5, decay_mult=0.0))))\n')
    load_tool().main([str(config)])
    out = capsys.readouterr().out
    assert 'WARNING: 4 parameters outside the backbone get a decayed lr ' \
        '(< base lr): decode_head.conv_seg.weight, decode_head.conv_seg.bias, ' \
        'auxiliary_head.conv_seg.weight and 1 more' in out
    assert 'WARNING: 2 weights with >= 2 dimensions get no weight decay: ' \
        'decode_head.conv_seg.weight, auxiliary_head.conv_seg.weight' in out


def test_6b_config_in_seconds_on_meta(capsys):
    report = run(SIX_B)
    groups = report['groups']
    assert len(groups) == 100
    lr = {p.name: p.lr for p in report['params']}
    assert lr['backbone.patch_embed.proj.weight'] == pytest.approx(
        4e-5 * 0.95**49)
    assert lr['backbone.blocks.0.attn.qkv.weight'] == pytest.approx(
        4e-5 * 0.95**48)
    assert lr['backbone.blocks.47.attn.qkv.weight'] == pytest.approx(
        4e-5 * 0.95)
    assert lr['decode_head.conv_seg.weight'] == 4e-5
    assert sum(g.params for g in groups) == 6_385_968_940
    # the released weights are not in the checkout: named, the
    # only warning
    cwd = os.getcwd()
    assert report['warnings'] == [
        "model.backbone.pretrained='./pretrained/intern_vit_6b_224px.pth' "
        f'does not exist (relative to the working directory {cwd}) '
        '(tools/train.py stops on this)']


def test_config_without_our_import_is_refused():
    import mmseg
    beit = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs',
                        'beit', 'beit-base_upernet_8xb2-160k_ade20k-640x640.py')
    with pytest.raises(ValueError, match='does not import internvl_optim'):
        run(beit)
    report = run(beit, '--cfg-options',
                 'custom_imports.imports=[internvl_optim]')
    assert len(report['groups']) == 28


def test_prints_rule_and_numbers_and_skips_decay_warning_at_wd_zero(capsys):
    # what the groups came from, and no "weights without weight
    # decay" warning when the configured weight decay is 0 (Segmenter, SETR)
    report = run(SMALL, '--cfg-options', 'optim_wrapper.optimizer.weight_decay=0')
    out = capsys.readouterr().out
    assert ('layer rule: ViT rule (backbone.layers), num_layers=4, '
            'layer_decay_rate=0.65 (first block lr 1.0710e-05), base lr '
            '6e-05, weight decay 0') in out
    assert report['settings']['num_layers'] == 4
    assert 'no warnings' in out


def test_absolute_eta_min_is_refused_like_train(tmp_path):
    config = tmp_path / 'eta_min.py'
    config.write_text(
        f"_base_ = [{os.path.abspath(os.path.join(ROOT, SMALL))!r}]\n"
        "param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=1.0,\n"
        "                        by_epoch=False, begin=0, end=100)]\n")
    with pytest.raises(ValueError, match=r'eta_min=0\.0001, at or above the '
                       r'starting lr of group heads \(6e-05\)'):
        load_tool().main([str(config)])


def test_shipped_mmdet_dino_config(capsys):
    # the analyser on MMDetection's DINO with our constructor and
    # InternImage's dino_head switched on
    mmdet = pytest.importorskip('mmdet')
    config = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs',
                          'dino', 'dino-4scale_r50_8xb2-12e_coco.py')
    load_tool().main([
        config, '--cfg-options', 'custom_imports.imports=[internvl_optim]',
        'optim_wrapper.constructor=LayerDecayOptimizerConstructor',
        'optim_wrapper.paramwise_cfg.layer_decay_rate=0.9',
        'optim_wrapper.paramwise_cfg.dino_head=True'])
    out = capsys.readouterr().out
    rows = {line.split()[1]: line.split()[2:] for line in out.splitlines()
            if len(line.split()) > 2 and line.split()[1].startswith('layer_')}
    assert rows['layer_6_dino_head_decay'] == [
        '6', '0.1', '1.0000e-05', '0.0001', '12', '786,432']
    assert rows['layer_5_backbone_decay'] == [
        '5', '0.09', '9.0000e-06', '0.0001', '10', '14,942,208']
    assert 'outside the backbone get a decayed lr' not in out


def test_an_image_encoder_backbone_is_the_constructors(tmp_path, capsys):
    """the analyser reads the backbone the constructor found
    (``image_encoder`` here), not only ``backbone``."""
    import torch
    from mmengine.model import BaseModel
    from mmengine.registry import MODELS
    from torch import nn

    @MODELS.register_module(name='ImageEncoderToyForAnalyser', force=True)
    class ImageEncoderToy(BaseModel):
        def __init__(self):
            super().__init__()
            self.image_encoder = nn.Module()
            self.image_encoder.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
            self.image_encoder.blocks = nn.ModuleList(
                nn.Linear(4, 4) for _ in range(2))
            self.head = nn.Linear(4, 2)

        def forward(self, *args, **kwargs):
            return {}

    config = tmp_path / 'image_encoder.py'
    config.write_text(
        "custom_imports = dict(imports=['internvl_optim'], "
        'allow_failed_imports=False)\n'
        "model = dict(type='ImageEncoderToyForAnalyser')\n"
        "optim_wrapper = dict(type='OptimWrapper', "
        "constructor='LayerDecayOptimizerConstructor', "
        "optimizer=dict(type='AdamW', lr=1.0), "
        'paramwise_cfg=dict(layer_decay_rate=0.5))\n')
    report = load_tool().main([str(config), '--real-weights'])
    out = capsys.readouterr().out
    assert 'no warnings' in out
    assert report['warnings'] == []
    rows = {p.name: p for p in report['params']}
    assert rows['image_encoder.blocks.0.weight'].in_backbone is True
    assert rows['head.weight'].in_backbone is False
    # AdamW's own default weight decay (0.01) is what the groups carry
    assert rows['head.weight'].weight_decay == 0.01
    assert rows['image_encoder.cls_token'].lr == 0.125


def test_the_constructor_table_labels_embeddings_blocks_and_heads():
    """the logged table says what each layer holds."""
    from internvl_optim import param_groups
    from internvl_optim.analysis.group_table import format_group_table

    import sys
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    from toy_models import ToyInternViT, ToySegmentor
    groups = param_groups(ToySegmentor(ToyInternViT(depth=2)), lr=1.0,
                          weight_decay=0.05, layer_decay_rate=0.5)
    lines = format_group_table(groups, 'title', num_layers=2).splitlines()
    assert lines[1].split() == ['group', 'layer', 'lr_scale', 'lr',
                                'weight_decay', 'tensors', 'params', 'part']
    parts = {line.split()[0]: ' '.join(line.split()[7:])
             for line in lines[3:-2]}
    assert parts['layer_0_decay'] == 'embeddings'
    assert parts['layer_1_decay'] == 'block 0'
    assert parts['layer_2_no_decay'] == 'block 1'
    assert parts['layer_3_decay'] == 'heads, necks'


def test_a_cnn_table_labels_units_not_blocks(capsys):
    """The module-order rule (CNNs) numbers the backbone's top-level units
    (ResNet: the stem, layer1..layer4), not blocks."""
    from internvl_optim.core import LayerDecaySettings, build_param_groups
    from internvl_optim.analysis.group_table import format_group_table
    from torch import nn
    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.conv1 = nn.Conv2d(3, 4, 3)
    model.backbone.layer1 = nn.Conv2d(4, 4, 3)
    model.backbone.layer2 = nn.Conv2d(4, 4, 3)
    model.head = nn.Linear(4, 2)
    plan = build_param_groups(model, LayerDecaySettings(layer_decay_rate=0.5),
                              1.0, 0.1)
    assert plan.layer_rule == 'module order rule (backbone.*: 3 units)'
    assert plan.units
    lines = format_group_table(plan.groups, 't', plan.num_layers, {},
                               plan.units).splitlines()
    parts = {line.split()[0]: ' '.join(line.split()[7:])
             for line in lines[3:-2]}
    assert parts == {'layer_3_decay': 'heads, necks',
                     'layer_3_no_decay': 'heads, necks',
                     'layer_2_decay': 'unit 2', 'layer_2_no_decay': 'unit 2',
                     'layer_1_decay': 'unit 1', 'layer_1_no_decay': 'unit 1',
                     'layer_0_decay': 'unit 0 (stem)',
                     'layer_0_no_decay': 'unit 0 (stem)'}


def test_compact_view_json_memory_and_plot_title(tmp_path, capsys):
    """one row per layer, memory and config in the JSON, the
    config's name as the plot title."""
    run(SIX_B, '--compact', '--world-size', '8', '--json',
        str(tmp_path / 'plan.json'), '--plot', str(tmp_path / 'plan.png'))
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()
            if line.split() and line.split()[0].isdigit()
            and 'e-0' in line]  # (not the memory table's rows)
    assert len(rows) == 50  # layers 0..49, decay and no decay merged
    assert rows[0][:2] == ['0', 'embeddings']
    assert rows[1][:3] == ['1', 'block', '0']
    assert rows[-1][:3] == ['49', 'heads,', 'necks']
    plan = json.loads((tmp_path / 'plan.json').read_text())
    assert plan['config'] == os.path.abspath(os.path.join(ROOT, SIX_B))
    assert [m['world_size'] for m in plan['memory_per_rank']] == [8]
    assert plan['memory_per_rank'][0]['total'] / 2**30 == pytest.approx(
        95.2, abs=0.05)
    assert (tmp_path / 'plan.png').read_bytes()[:4] == b'\x89PNG'


@pytest.mark.parametrize('option, value, message', [
    ('--gpu-gib', '-1', 'must be a finite number > 0, got -1'),
    ('--gpu-gib', 'nan', 'must be a finite number > 0, got nan'),
    ('--gpu-gib', 'inf', 'must be a finite number > 0, got inf'),
    ('--world-size', '0', 'must be a finite number > 0, got 0'),
    ('--world-size', 'two', "'two' is not an int"),
])
def test_the_analysers_numbers_are_checked(option, value, message, capsys):
    with pytest.raises(SystemExit) as stop:
        load_tool().parse_args(['config.py', option, value])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        f'error: argument {option}: {message}')
    assert load_tool().parse_args(['config.py', '--gpu-gib', '40',
                                   '--world-size', '2', '8']).gpu_gib == 40.0


def test_check_order_runs_the_demo_backbone(capsys):
    report = run('configs/demo/internvit_tiny_upernet_synthetic_ade20k.py',
                 '--check-order')
    out = capsys.readouterr().out
    assert 'run order: every layer id follows the forward pass (64x64 ' \
        'image)' in out
    assert not any(w.startswith('run order') for w in report['warnings'])


@pytest.mark.parametrize('config, rule, ids', [
    ('configs/transformers/dinov3_vit_tiny_layer_decay.py',
     'ViT rule (backbone.model.layer), num_layers=4',
     {'backbone.embeddings.patch_embeddings.weight': 0,
      'backbone.embeddings.register_tokens': 0,
      'backbone.model.layer.0.mlp.up_proj.weight': 1,
      'backbone.model.layer.3.attention.o_proj.weight': 4,
      'backbone.norm.weight': 5, 'head.weight': 5}),
    ('configs/transformers/convnext_tiny_layer_decay.py',
     'stage rule (backbone.encoder.stages, depths [1, 1, 2, 1]), '
     'num_layers=5',
     {'backbone.embeddings.patch_embeddings.weight': 0,
      'backbone.encoder.stages.0.layers.0.dwconv.weight': 1,
      'backbone.encoder.stages.2.layers.1.pwconv1.weight': 4,
      'backbone.encoder.stages.3.layers.0.pwconv2.weight': 5,
      'head.weight': 6}),
])
def test_check_order_on_transformers_encoders(config, rule, ids, capsys):
    """transformers' DINOv3 ViT (blocks at ``model.layer``) and ConvNeXt
    (``encoder.stages.i.layers.j``) as MMEngine backbones: one id per block
    in the order the forward pass runs them, embeddings at 0."""
    report = run(config, '--check-order', '--input-size', '32', '32')
    out = capsys.readouterr().out
    assert f'layer rule: {rule}' in out
    assert 'run order: every layer id follows the forward pass (32x32 ' \
        'image)' in out
    layer = {p.name: p.layer_id for p in report['params']}
    assert {n: layer[n] for n in ids} == ids
    assert 'no warnings' in out


def test_hybrid_config_shows_each_groups_update(tmp_path, capsys):
    """The dry run of the Muon demo config: the update of every group and
    parameter in the table and the JSON, the halves' totals, and the
    optimizer state per element (Muon 1, AdamW 2, weighted)."""
    import json
    out = tmp_path / 'plan.json'
    run('configs/demo/internvit_tiny_upernet_synthetic_ade20k_muon.py',
        '--json', str(out), '--world-size', '2')
    text = capsys.readouterr().out
    plan = json.loads(out.read_text())
    updates = {p['name']: p['algorithm'] for p in plan['params']}
    assert updates['backbone.blocks.0.attn.qkv.weight'] == 'muon'
    assert updates['backbone.blocks.0.norm1.weight'] == 'adamw'
    assert updates['decode_head.conv_seg.weight'] == 'adamw'
    assert {g['algorithm'] for g in plan['groups']} == {'muon', 'adamw'}
    muon = sum(g['params'] for g in plan['groups'] if g['algorithm'] == 'muon')
    adamw = sum(g['params'] for g in plan['groups']
                if g['algorithm'] == 'adamw')
    assert (f'Muon: 32 tensors, {muon:,} elements; AdamW: 75 tensors, '
            f'{adamw:,} elements') in text
    states = (muon + 2 * adamw) / (muon + adamw)
    assert f'MuonAdamW ({states:.3g} state tensor(s) per element)' in text
