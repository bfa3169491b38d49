"""Wire models: what crosses Kafka and HTTP, kept apart from the domain core."""
