"""Every partition set of skuvid, in one place: one partition per SKU, per campaign, per training module."""

from dagster import DynamicPartitionsDefinition

sku_partitions = DynamicPartitionsDefinition(name="sku")
campaign_partitions = DynamicPartitionsDefinition(name="campaign")
module_partitions = DynamicPartitionsDefinition(name="module")
