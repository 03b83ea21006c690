"""The provider adapter: the ChatModel protocol, the litellm path, the direct OpenAI-
compatible route, the local llama.cpp model, model resolution, retries, cache,
structured replies, metering and the network switch.
"""
