"""Partition definitions. They live beside the assets that are declared with them (imports point one way)."""

from dagster import DynamicPartitionsDefinition

sku_partitions = DynamicPartitionsDefinition(name="sku")
