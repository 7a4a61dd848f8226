"""YTCaption's LocalStack plugin (pinned to localstack-core 4.9.2).

- ``executor``: a Lambda runtime executor that runs each execution environment
  as a host process (no Docker): zip functions on the interpreter configured for
  their runtime with the unzipped code and layers on the path, image functions on
  the local code their image maps to. Function timeouts are enforced.
- ``providers``: DynamoDB and Batch served from the moto LocalStack bundles;
  every Batch job runs the job definition's command (``python -m
  ytcaption.worker``) as a host process, so ``batch:submitJob.sync`` waits on
  real work.
- ``cfn_batch``: CloudFormation resource providers for the three AWS::Batch
  types the template uses (the community edition has none).

Everything that maps the cloud onto this machine is in one JSON file named by
``YTCAPTION_LS_CONFIG`` (see ``config.py``).
"""
