"""The REST API of SPEC §6, served by every worker from the state its agents write;
`app.build_app` assembles its FastAPI application, streams/web.py serves it."""
