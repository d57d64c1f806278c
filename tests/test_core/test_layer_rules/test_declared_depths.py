"""transformers encoders declare their depth in the config
(``num_hidden_layers``, or ``depths`` per stage): the block list or the
stages holding exactly that many blocks decide the layer ids, one per block
in run order, before any name table.

Facts (transformers 5.24.0): HF ConvNeXt, ResNet and CvT keep their stages
at ``encoder.stages.{s}`` with the blocks at ``.layers.{b}`` (ConvNeXt's
``downsampling_layer`` and CvT's ``embedding`` before them; CvT's last
stage holds a ``cls_token`` itself); DINOv3-ViT keeps its blocks at
``layer.{i}``, Pixtral at ``transformer.layers.{i}``; each model's
embeddings are registered first and its final norm after the encoder."""
import pytest
import torch

from helpers import build_plan, layer_by_name, lr_wd_by_name, with_head

T = pytest.importorskip('transformers')


def on_meta(cls, config):
    with torch.device('meta'):
        return with_head(cls(config))


def stage_ids(model, depths, container='backbone.encoder.stages',
              blocks='layers'):
    """Expected ids by the stage rule: block b of stage s at
    sum(depths[:s]) + b + 1; what a stage runs before its blocks at its
    first block's id (stage 0: 0); the embeddings 0; the rest N + 1."""
    n = sum(depths)
    out = {}
    for name, _ in model.named_parameters():
        if name.startswith(container + '.'):
            parts = name[len(container) + 1:].split('.')
            s = int(parts[0])
            if parts[1] == blocks:
                out[name] = sum(depths[:s]) + int(parts[2]) + 1
            else:
                out[name] = 0 if s == 0 else sum(depths[:s]) + 1
        elif name.startswith('backbone.embeddings') or \
                name.startswith('backbone.embedder'):
            out[name] = 0
        else:
            out[name] = n + 1
    return out


@pytest.mark.parametrize('build, depths', [
    (lambda: on_meta(T.ConvNextModel, T.ConvNextConfig(
        depths=[1, 1, 2, 1], hidden_sizes=[4, 8, 8, 8])), [1, 1, 2, 1]),
    (lambda: on_meta(T.ResNetModel, T.ResNetConfig(
        depths=[1, 2, 1, 1], hidden_sizes=[4, 4, 8, 8], embedding_size=4)),
     [1, 2, 1, 1]),
    # (CvT's stages index their drop-path list by stage: depth[s] > s)
    (lambda: on_meta(T.CvtModel, T.CvtConfig(depth=[1, 2, 3])), [1, 2, 3]),
])
def test_hierarchical_encoders_one_id_per_block_in_run_order(build, depths):
    model = build()
    plan = build_plan(model, layer_decay_rate=0.5)
    assert plan.layer_rule == (
        f'stage rule (backbone.encoder.stages, depths {depths})')
    assert plan.num_layers == sum(depths)
    assert layer_by_name(plan.groups) == stage_ids(model, depths)
    ids = [layer_by_name(plan.groups)[n] for n, _ in model.named_parameters()]
    assert ids == sorted(ids)  # registration (run) order, never back


def test_cvt_stage_token_runs_with_its_stage():
    model = on_meta(T.CvtModel, T.CvtConfig(depth=[1, 2, 3]))
    ids = layer_by_name(build_plan(model, layer_decay_rate=0.5).groups)
    # it joins the sequence before stage 2's first block (id 1 + 2 + 1);
    # it was at the heads' lr
    assert ids['backbone.encoder.stages.2.cls_token'] == 4
    assert ids['backbone.encoder.stages.2.layers.0.layernorm_before.weight'] \
        == 4


@pytest.mark.parametrize('build, blocks', [
    (lambda: on_meta(T.DINOv3ViTModel, T.DINOv3ViTConfig(
        num_hidden_layers=3, hidden_size=16, intermediate_size=32,
        num_attention_heads=2, num_register_tokens=2)), 'backbone.model.layer'),
    (lambda: on_meta(T.PixtralVisionModel, T.PixtralVisionConfig(
        num_hidden_layers=3, hidden_size=16, intermediate_size=32,
        num_attention_heads=2, head_dim=8)), 'backbone.transformer.layers'),
])
def test_flat_encoders_one_id_per_block(build, blocks):
    model = build()
    plan = build_plan(model, layer_decay_rate=0.5)
    assert plan.layer_rule == f'ViT rule ({blocks})'
    ids = layer_by_name(plan.groups)
    for name, _ in model.named_parameters():
        if name.startswith(blocks + '.'):
            assert ids[name] == int(name[len(blocks) + 1:].split('.')[0]) + 1
    first = next(n for n, _ in model.named_parameters())
    assert ids[first] == 0  # the patch embedding, registered first
    assert ids['head.weight'] == 4


def test_position_tables_get_no_weight_decay():
    # relative position bias tables are decayed as BEiT's recipe (and
    # MMSeg's reproduction of it) does; Swin's recipe exempts them, which
    # MMSeg's Swin configs say with a custom key
    model = on_meta(T.SwinModel, T.SwinConfig(
        depths=[1, 1], num_heads=[1, 1], embed_dim=8, image_size=32,
        patch_size=4, window_size=2))
    lrs = lr_wd_by_name(build_plan(model, layer_decay_rate=0.5).groups)
    tables = [n for n in lrs if n.endswith('relative_position_bias_table')]
    assert tables and all(lrs[n][1] == 0.05 for n in tables)
    lrs = lr_wd_by_name(build_plan(model, layer_decay_rate=0.5, custom_keys={
        'relative_position_bias_table': dict(decay_mult=0.0)}).groups)
    assert all(lrs[n][1] == 0.0 for n in tables)
    assert lrs['backbone.encoder.layers.0.blocks.0.attention.q_proj.'
               'weight'][1] == 0.05
    from internvl_optim.core.names import is_token_or_position
    assert [is_token_or_position(n) for n in (
        'positional_embedding_vlm', 'positional_embedding', 'class_pos_emb',
        'position_embedding_table', 'rel_pos_h', 'weight')] == \
        [True, True, True, True, False, False]


def test_sam_relative_position_tables_are_decayed_as_vitdet_does():
    """SAM's vision encoder (transformers 5.24.0) holds ``pos_embed`` and,
    per block, ``attn.rel_pos_h`` / ``rel_pos_w``. ViTDet's recipe
    (detectron2 ``projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py``
    at 1d650efc: ``overrides = {"pos_embed": {"weight_decay": 0.0}}``)
    exempts only the absolute table; a custom key exempts the others."""
    model = on_meta(T.SamVisionModel, T.SamVisionConfig(
        hidden_size=16, output_channels=8, num_hidden_layers=2,
        num_attention_heads=2, image_size=32, patch_size=8, mlp_dim=32,
        global_attn_indexes=[1], window_size=2, use_rel_pos=True))
    lrs = lr_wd_by_name(build_plan(model, layer_decay_rate=0.5).groups)
    encoder = 'backbone.vision_encoder.'
    assert lrs[encoder + 'pos_embed'] == (0.125, 0.0)
    assert lrs[encoder + 'layers.0.attn.rel_pos_h'] == (0.25, 0.05)
    assert lrs[encoder + 'layers.1.attn.rel_pos_w'] == (0.5, 0.05)
    lrs = lr_wd_by_name(build_plan(model, layer_decay_rate=0.5, custom_keys={
        'rel_pos_': dict(decay_mult=0.0)}).groups)
    assert lrs[encoder + 'layers.0.attn.rel_pos_h'] == (0.25, 0.0)


def test_stages_in_parallel_lists_run_in_order():
    # HF PVT: encoder.patch_embeddings.{s} (with stage 3's cls_token) run at
    # the start of stage s, encoder.block.{s}.{b} are its blocks, the final
    # encoder.layer_norm after the last; the embeddings of later stages
    # were all at layer 0 while they run after stage 0
    model = on_meta(T.PvtModel, T.PvtConfig(
        depths=[1, 1, 2, 1], hidden_sizes=[8, 8, 8, 8],
        num_attention_heads=[1, 1, 1, 1],
        sequence_reduction_ratios=[2, 2, 2, 1], patch_sizes=[4, 2, 2, 2],
        strides=[4, 2, 2, 2], image_size=32))
    plan = build_plan(model, layer_decay_rate=0.5)
    assert plan.layer_rule == ('parallel stage rule (backbone.encoder.block, '
                               'depths [1, 1, 2, 1])')
    ids = layer_by_name(plan.groups)
    depths, expected = [1, 1, 2, 1], {}
    for name in ids:
        parts = name.split('.')
        if name.startswith('backbone.encoder.block.'):
            s, b = int(parts[3]), int(parts[4])
            expected[name] = sum(depths[:s]) + b + 1
        elif name.startswith('backbone.encoder.patch_embeddings.'):
            s = int(parts[3])
            expected[name] = 0 if s == 0 else sum(depths[:s]) + 1
        else:  # the final layer_norm and the head
            expected[name] = 6
    assert ids == expected


def test_hgnet_v2_blocks_per_stage_are_stage_num_blocks():
    """HGNetV2 (transformers 5.24.0) builds ``stage_num_blocks[s]`` blocks
    (``HGNetV2BasicLayer``, its ``_no_split_modules``) at
    ``encoder.stages.{s}.blocks.{b}``; its config's ``depths`` ([3, 4, 6,
    3] by default) is not what it builds."""
    config = T.HGNetV2Config(stage_num_blocks=[1, 2, 1, 1])
    assert list(config.depths) == [3, 4, 6, 3]
    with torch.device('meta'):
        model = with_head(T.HGNetV2Backbone(config))
    plan = build_plan(model, layer_decay_rate=0.5)
    assert plan.layer_rule == ('stage rule (backbone.encoder.stages, depths '
                               '[1, 2, 1, 1])')
    assert layer_by_name(plan.groups) == stage_ids(
        model, [1, 2, 1, 1], blocks='blocks')


def test_stages_interleaved_with_downsampling_in_one_list():
    """SwiftFormer (transformers 5.24.0) keeps ``encoder.network`` as
    stage, downsampling embedding, stage, ...: items 0, 2, 4, 6 hold
    ``blocks`` lists of ``depths`` [3, 3, 6, 4] blocks (convolution blocks,
    then one attention block); items 1, 3, 5 run between the stages."""
    with torch.device('meta'):
        model = with_head(T.SwiftFormerModel(T.SwiftFormerConfig()))
    plan = build_plan(model, layer_decay_rate=0.5)
    assert plan.layer_rule == ('stage rule (backbone.encoder.network, '
                               'depths [3, 3, 6, 4])')
    ids = layer_by_name(plan.groups)
    depths, first = [3, 3, 6, 4], [1, 4, 7, 13]
    for name, _ in model.named_parameters():
        parts = name.split('.')
        if name.startswith('backbone.encoder.network.'):
            item = int(parts[3])
            if item % 2 == 0:  # stage item // 2, block parts[5]
                assert parts[4] == 'blocks'
                expected = first[item // 2] + int(parts[5])
            else:  # the downsampling before stage (item + 1) // 2
                expected = first[(item + 1) // 2]
        elif name.startswith('backbone.patch_embed.'):
            expected = 0
        else:
            expected = sum(depths) + 1
        assert ids[name] == expected, name
    order = [ids[n] for n, _ in model.named_parameters()]
    assert order == sorted(order)  # registration (run) order, never back


def test_a_declared_block_of_two_items_gets_one_id():
    """LeViT (transformers 5.24.0) declares depths [4, 4, 4], counting
    attention + MLP residual pairs (``LevitResidualLayer`` wrapping a
    ``LevitAttention``, then one wrapping a ``LevitMLPLayer``) in
    ``encoder.stages.{s}.layers``; stages 0 and 1 end with the subsampling
    into the next stage (``LevitAttentionSubsample`` and an MLP residual
    layer), which runs before that stage's first block."""
    with torch.device('meta'):
        model = with_head(T.LevitModel(T.LevitConfig()))
    plan = build_plan(model, layer_decay_rate=0.5)
    assert plan.layer_rule == ('stage rule (backbone.encoder.stages, depths '
                               '[4, 4, 4])')
    ids = layer_by_name(plan.groups)
    for name, _ in model.named_parameters():
        parts = name.split('.')
        if name.startswith('backbone.encoder.stages.'):
            s, item = int(parts[3]), int(parts[5])
            # pairs 0-3 are blocks 4s+1..4s+4, the subsampling pair (items
            # 8, 9) the next stage's first block
            assert ids[name] == 4 * s + item // 2 + 1, name
        elif name.startswith('backbone.patch_embeddings.'):
            assert ids[name] == 0, name
        else:
            assert ids[name] == 13, name
    order = [ids[n] for n, _ in model.named_parameters()]
    assert order == sorted(order)


def test_a_transformers_model_in_module_order_is_named():
    """MobileNetV2 (transformers 5.24.0) declares neither depth nor block
    list its layout matches: the fallback by module order says so."""
    messages = []
    with torch.device('meta'):
        model = with_head(T.MobileNetV2Model(T.MobileNetV2Config()))
    plan = build_plan(model, layer_decay_rate=0.5, warn=messages.append)
    assert plan.layer_rule == 'module order rule (backbone.*: 3 units)'
    assert messages == [
        "backbone 'backbone' (MobileNetV2Model) declares a mobilenet_v2 "
        'config, but no list of blocks or stages of blocks matching it was '
        'found: its layer ids follow the order of its 3 top-level modules '
        'instead, each module one id. Check the placement with '
        'tools/analyze_param_groups.py --check-order, or set '
        'paramwise_cfg.layer_regex']
    # at rate 1.0 every id has the base lr: nothing to say
    messages.clear()
    build_plan(model, warn=messages.append)
    assert messages == []


def test_a_position_table_beside_the_blocks_is_layer_0():
    """YOLOS (transformers 5.24.0) keeps its mid-position embeddings, added
    to the tokens inside the blocks, at
    ``encoder.interpolation.mid_position_embeddings``, a module registered
    after ``encoder.layer``: a position table, layer 0 with the other
    embeddings, no weight decay."""
    with torch.device('meta'):
        model = with_head(T.YolosModel(T.YolosConfig(
            hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
            intermediate_size=32, image_size=[32, 32], patch_size=8,
            num_detection_tokens=2, use_mid_position_embeddings=True)))
    plan = build_plan(model, layer_decay_rate=0.5)
    assert plan.layer_rule == 'ViT rule (backbone.encoder.layer)'
    lrs, ids = lr_wd_by_name(plan.groups), layer_by_name(plan.groups)
    for name in ('embeddings.cls_token', 'embeddings.detection_tokens',
                 'embeddings.position_embeddings',
                 'encoder.interpolation.mid_position_embeddings'):
        assert (ids['backbone.' + name], lrs['backbone.' + name]) == \
            (0, (0.0625, 0.0)), name
    assert ids['backbone.encoder.layer.2.output.dense.weight'] == 3
    assert lrs['backbone.layernorm.weight'] == (1.0, 0.0)


def test_a_stem_beside_a_nested_stage_list_is_layer_0():
    """PP-LCNet (transformers 5.24.0) keeps its stem convolution at
    ``encoder.convolution``, registered before the stages at
    ``encoder.blocks.{s}.layers.{b}`` (depths [1, 2, 2, 6, 2]); it runs
    first."""
    depths = [1, 2, 2, 6, 2]
    with torch.device('meta'):
        model = with_head(T.PPLCNetBackbone(T.PPLCNetConfig()))
    plan = build_plan(model, layer_decay_rate=0.5)
    assert plan.layer_rule == ('stage rule (backbone.encoder.blocks, depths '
                               '[1, 2, 2, 6, 2])')
    ids = layer_by_name(plan.groups)
    for name, _ in model.named_parameters():
        parts = name.split('.')
        if name.startswith('backbone.encoder.convolution.'):
            assert ids[name] == 0, name
        elif name.startswith('backbone.encoder.blocks.'):
            s, b = int(parts[3]), int(parts[5])
            assert ids[name] == sum(depths[:s]) + b + 1, name
        else:
            assert ids[name] == sum(depths) + 1, name


def test_a_second_transformer_the_config_declares_continues_the_ids():
    """Mllama's vision model (transformers 5.24.0) runs ``transformer.
    layers`` (``num_hidden_layers``), then ``layernorm_post`` and
    ``post_tile_positional_embedding`` (both registered before the
    transformers), then ``global_transformer.layers`` (``num_global_layers``,
    same ``MllamaVisionEncoderLayer`` class): the global blocks continue the
    ids, the post-modules take the first global block's id."""
    config = T.MllamaVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_global_layers=3, attention_heads=2, image_size=16, patch_size=8,
        intermediate_layers_indices=[0, 1])
    with torch.device('meta'):
        model = with_head(T.MllamaVisionModel(config))
    messages = []
    plan = build_plan(model, layer_decay_rate=0.5, warn=messages.append)
    assert messages == []
    assert plan.layer_rule == ('ViT rule (backbone.transformer.layers + '
                               'backbone.global_transformer.layers)')
    assert plan.num_layers == 5
    ids, lrs = layer_by_name(plan.groups), lr_wd_by_name(plan.groups)
    for name, _ in model.named_parameters():
        parts = name.split('.')
        if name.startswith('backbone.transformer.layers.'):
            expected = int(parts[3]) + 1
        elif name.startswith('backbone.global_transformer.layers.'):
            expected = 3 + int(parts[3])
        elif parts[1] in ('layernorm_post', 'post_tile_positional_embedding'):
            expected = 3
        elif name.startswith('backbone.'):
            expected = 0  # embeddings, tile embeddings, layernorm_pre
        else:
            expected = 6
        assert ids[name] == expected, name
    assert lrs['backbone.global_transformer.layers.2.mlp.fc1.weight'] == \
        (0.5, 0.05)
    assert lrs['backbone.layernorm_pre.weight'] == (0.5 ** 6, 0.0)


def test_a_predictor_of_the_same_block_class_is_not_continued():
    """V-JEPA 2 (transformers 5.24.0) holds ``encoder.layer``
    (``num_hidden_layers``) and ``predictor.layer``
    (``pred_num_hidden_layers``), both of ``VJEPA2Layer`` but held by a
    ``VJEPA2Encoder`` and a ``VJEPA2Predictor``: the predictor is no second
    encoder; its blocks stay at the heads' layer, named in a warning, and
    the encoder's ids are not pushed down by them."""
    config = T.VJEPA2Config(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        mlp_ratio=2, pred_hidden_size=16, pred_num_hidden_layers=2,
        pred_num_attention_heads=2, crop_size=16, patch_size=8,
        frames_per_clip=2, tubelet_size=2)
    with torch.device('meta'):
        model = with_head(T.VJEPA2Model(config))
    messages = []
    plan = build_plan(model, layer_decay_rate=0.5, warn=messages.append)
    assert plan.layer_rule == 'ViT rule (backbone.encoder.layer)'
    assert plan.num_layers == 2
    ids = layer_by_name(plan.groups)
    assert ids['backbone.encoder.layer.1.attention.query.weight'] == 2
    assert ids['backbone.predictor.layer.0.attention.query.weight'] == 3
    assert len(messages) == 1 and messages[0].startswith(
        "32 backbone parameters are claimed by no layer rule and get the "
        "heads' layer N + 1: backbone.predictor.layer.0.norm1.weight, ")


def test_an_encoder_decoder_one_model_continues_into_its_decoder():
    """UDOP (transformers 5.24.0) declares no towers: ``encoder.block``
    (``num_layers``) and ``decoder.block`` (``num_decoder_layers``), both
    held by a ``UdopStack``, of one ``UdopBlock`` class.  The decoder's
    blocks continue the ids; the encoder's 2-D cell position embeddings
    (``encoder.cell_2d_embedding``, registered after the blocks) run first,
    its final norm before the decoder; the decoder's patch embedding at its
    start, its final norm last."""
    config = T.UdopConfig(
        d_model=16, d_kv=8, d_ff=32, num_layers=2, num_decoder_layers=3,
        num_heads=2, vocab_size=50, image_size=32, patch_size=16,
        relative_bias_args=[{'type': '1d'}])
    with torch.device('meta'):
        model = T.UdopForConditionalGeneration(config)
    messages = []
    plan = build_plan(model, layer_decay_rate=0.5, warn=messages.append)
    assert messages == []
    assert plan.layer_rule == 'ViT rule (encoder.block + decoder.block)'
    ids = layer_by_name(plan.groups)
    for name in ids:
        parts = name.split('.')
        if parts[1] == 'block':
            expected = int(parts[2]) + (1 if parts[0] == 'encoder' else 3)
        elif parts[0] in ('shared', 'patch_embed') or \
                parts[1] == 'cell_2d_embedding':
            expected = 0
        elif name in ('encoder.final_layer_norm.weight',) or \
                parts[1] == 'embed_patches':
            expected = 3
        else:  # decoder.final_layer_norm
            assert name == 'decoder.final_layer_norm.weight'
            expected = 6
        assert ids[name] == expected, name
