"""Generation: teachers' dialectics appended as trace records, resumable by many processes.

`generate` runs the loop (prompts in, records and rejects out), `dialectic` asks a
teacher for thesis, antithesis and synthesis, `ledger` shares which prompts are done,
`limits` paces and retries teacher calls, `status` reads a run while it runs, `reasons`
groups rejections, and `sdk_teacher` is the base of teachers on the openai/anthropic SDKs.
"""
