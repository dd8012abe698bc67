"""Shared models used by several parts: a small GPT with a KV cache and its tokenizer.

The finetune part (adapters, prefix/prompt tuning, LoRA) and the decoding part (Medusa)
build on these instead of defining their own transformer.
"""
