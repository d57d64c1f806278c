"""The provider of ``paramwise_cfg.layer_regex``: the compiled spec
(:class:`~internvl_optim.core.layer_regex.RegexLayerRule`) applied to the
backbone-relative names."""
from ..layer_regex import RegexLayerRule
from .common import check_num_layers


def claims(ctx) -> bool:
    return ctx.settings.layer_regex is not None


def build(ctx):
    rule = RegexLayerRule(ctx.settings.layer_regex)
    n = check_num_layers(
        ctx.settings.num_layers,
        rule.infer_num_layers(r for r in ctx.rule_names.values() if r),
        f'paramwise_cfg.layer_regex.blocks on {ctx.desc}')
    indices = {rule.block_index(r) for r in ctx.rule_names.values() if r}
    first = min(i for i in indices if i is not None)
    if first > 0:
        ctx.warn(f'paramwise_cfg.layer_regex.blocks captures block indices '
                 f'from {first}: layers 1..{first} hold no block (indices '
                 'count from 0, block i is layer i + 1)')
    def claimed(name):
        rel = ctx.rule_names.get(name)
        return rel is None or rule.block_index(rel) is not None or \
            rule.is_embedding(rel)

    return ctx.make_rule(n, 'paramwise_cfg.layer_regex',
                         lambda rel: rule.layer_id(rel, n),
                         claimed), frozenset({'layer_regex'})
