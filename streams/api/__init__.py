"""The REST API of SPEC §6, served by every worker from the state its agents write;
`routes.register` puts it on a worker's web server."""
