"""Finetune part: parameter-efficient fine-tuning on a small GPT: adapters, prefix and prompt tuning, LoRA.

One module per chapter of ``docs/finetune/``; see the chapter for the derivations."""
