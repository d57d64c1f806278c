"""Tiny transformers VLMs (random weights, built from configs: nothing is
downloaded), shared by the tests of several folders."""


def tiny_internvl():
    """transformers' InternVL: a 2-block vision tower with qk-norm and RMS
    norms, a projector, a 3-block Qwen2 with tied embeddings."""
    import transformers as T
    config = T.InternVLConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64,
                           image_size=32, patch_size=8, use_qk_norm=True,
                           norm_type='rms_norm'),
        text_config=dict(model_type='qwen2', hidden_size=32,
                         num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64,
                         vocab_size=100, tie_word_embeddings=True),
        image_token_id=99)
    return T.InternVLForConditionalGeneration(config)
