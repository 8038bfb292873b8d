"""IncrementalAlterConfigs, AlterConfigs and DescribeConfigs on the wire (non-flexible versions),
for what the Python clients cannot send: the cluster-default broker resource (name ""), a
broker id other than the node's, and the synonyms list in Kafka's order (confluent-kafka keys
synonyms by name, which folds a per-broker and a default entry of the same name into one)."""

from kafka_wire import Reader, array, int8, string

DESCRIBE_CONFIGS = 32
ALTER_CONFIGS = 33
INCREMENTAL_ALTER_CONFIGS = 44

TOPIC = 2
BROKER = 4

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3

# Kafka's ConfigSource ids (DescribeConfigs v1+).
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5


def _boolean(value):
    return int8(1 if value else 0)


def _alter_results(response):
    response.int32()  # throttle_time_ms
    results = response.array(lambda r: {
        "error_code": r.int16(), "error_message": r.string(), "resource_type": r.int8(),
        "resource_name": r.string()})
    response.expect_end("AlterConfigs response")
    return results


def incremental_alter_configs(connection, resources, validate_only=False):
    """IncrementalAlterConfigs v0. `resources` is [(type, name, [(config, op, value)])]."""
    body = array(resources, lambda res: int8(res[0]) + string(res[1]) + array(
        res[2], lambda c: string(c[0]) + int8(c[1]) + string(c[2])))
    body += _boolean(validate_only)
    return _alter_results(connection.request(INCREMENTAL_ALTER_CONFIGS, 0, body))


def alter_configs(connection, resources, validate_only=False):
    """AlterConfigs v0 (replaces every dynamic config of the resource). `resources` is
    [(type, name, {config: value})]."""
    body = array(resources, lambda res: int8(res[0]) + string(res[1]) + array(
        list(res[2].items()), lambda c: string(c[0]) + string(c[1])))
    body += _boolean(validate_only)
    return _alter_results(connection.request(ALTER_CONFIGS, 0, body))


def describe_configs(connection, resources, include_synonyms=True, include_documentation=False,
                     version=3):
    """DescribeConfigs v1-3. `resources` is [(type, name, keys or None)]. Returns one dict per
    resource with `configs` {name: dict(value, read_only, source, sensitive, synonyms[, type,
    documentation])}, synonyms as [(name, value, source)] in the broker's order."""
    body = array(resources, lambda res: int8(res[0]) + string(res[1]) + array(res[2], string))
    body += _boolean(include_synonyms)
    if version >= 3:
        body += _boolean(include_documentation)
    response = connection.request(DESCRIBE_CONFIGS, version, body)
    response.int32()  # throttle_time_ms

    def config(r):
        entry = {"name": r.string(), "value": r.string(), "read_only": r.boolean(),
                 "source": r.int8(), "sensitive": r.boolean(),
                 "synonyms": r.array(lambda s: (s.string(), s.string(), s.int8()))}
        if version >= 3:
            entry["type"] = r.int8()
            entry["documentation"] = r.string()
        return entry

    results = response.array(lambda r: {
        "error_code": r.int16(), "error_message": r.string(), "resource_type": r.int8(),
        "resource_name": r.string(), "configs": {c["name"]: c for c in r.array(config)}})
    response.expect_end("DescribeConfigs response")
    return results
