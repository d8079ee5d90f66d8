"""What the two sinks are for: the same questions answered live (Elasticsearch) and in
batch (Spark over the HDFS archive), and whether the two answers agree."""
