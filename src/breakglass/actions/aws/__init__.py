"""The AWS provider: the aws.* actions on boto3."""
