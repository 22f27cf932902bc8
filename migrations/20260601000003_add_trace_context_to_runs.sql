-- v0.2: the first attempt's W3C traceparent (and tracestate), so resumed attempts can link back.
ALTER TABLE continuum_runs ADD COLUMN trace_context bytea;
