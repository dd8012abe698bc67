"""Foundations part: autograd, modules versus functional calls, the bias term, mixed precision and API-export decorators.

One module per chapter of ``docs/foundations/``; see the chapter for the derivations."""
