"""boto3 against `batch-transform api`, one scenario per run: `python3 boto3_scenarios.py <scenario>
'<json args>'`. The client is built exactly as user code builds it, `boto3.client('sagemaker')`: the
endpoint comes from AWS_ENDPOINT_URL_SAGEMAKER and the (dummy) credentials and region from the
environment. Prints one JSON line: what the test asserts on. Timestamps are printed as
`{"datetime": <epoch seconds>}` so the test can see botocore parsed them as datetimes.
"""
import datetime
import json
import sys
import time

import boto3
from botocore.exceptions import ClientError, WaiterError


def encode(value):
    if isinstance(value, datetime.datetime):
        return {"datetime": value.timestamp()}
    raise TypeError(repr(value))


def clean(response):
    response = dict(response)
    response.pop("ResponseMetadata", None)
    return response


def error_of(call):
    try:
        call()
    except ClientError as e:
        return {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]}
    return None


def wait(sagemaker_client, name):
    waiter = sagemaker_client.get_waiter("transform_job_completed_or_stopped")
    try:
        waiter.wait(TransformJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        return "success"
    except WaiterError as e:
        return "failure: " + str(e)


def seed(args):
    # The seed's code (a SageMaker user's notes, request dict verbatim); only the variables it
    # leaves to the reader are given values here.
    batch_job_name = args["name"]
    model_name = "iris"
    payload_size = 1
    max_concurrent_tranform_jobs = 2
    environment_variables = {}
    input_s3_path = args["input"]
    output_s3_path = args["output"]
    instance_type = "ml.m5.large"
    instance_count = 1

    sagemaker_client = boto3.client('sagemaker')

    request = {
                "TransformJobName": batch_job_name,
                "ModelName": model_name,
                "MaxPayloadInMB": payload_size,
                "BatchStrategy": "MultiRecord",
                "MaxConcurrentTransforms": max_concurrent_tranform_jobs,
                "Environment": environment_variables,
                "TransformInput": {
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": input_s3_path
                        }
                    },
                    "ContentType": "text/csv",
                    "SplitType": "Line",
                    "CompressionType": "None"
                },
                "TransformOutput": {
                    'S3OutputPath': output_s3_path,
                },
                "TransformResources": {
                    "InstanceType": instance_type,
                    "InstanceCount": instance_count
                }
            }
    created = sagemaker_client.create_transform_job(**request)
    waited = wait(sagemaker_client, batch_job_name)
    described = sagemaker_client.describe_transform_job(TransformJobName=batch_job_name)
    return {"created": clean(created), "waited": waited, "described": clean(described)}


def model_then_job(args):
    sm = boto3.client("sagemaker")
    created = sm.create_model(
        ModelName=args["model"],
        PrimaryContainer={
            "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-model:1",
            "ModelDataUrl": args["modelData"],
            "Environment": {"MODEL_UPPERCASE": "1", "MODEL_PREFIX_FILE": "prefix.txt"},
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
    )
    described_model = sm.describe_model(ModelName=args["model"])
    models = sm.list_models(NameContains=args["model"])["Models"]
    sm.create_transform_job(
        TransformJobName=args["name"],
        ModelName=args["model"],
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": args["input"]}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": args["output"], "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    waited = wait(sm, args["name"])
    described = sm.describe_transform_job(TransformJobName=args["name"])
    deleted = clean(sm.delete_model(ModelName=args["model"]))
    after_delete = error_of(lambda: sm.describe_model(ModelName=args["model"]))
    return {
        "created": clean(created),
        "describedModel": clean(described_model),
        "models": models,
        "waited": waited,
        "described": clean(described),
        "deleted": deleted,
        "afterDelete": after_delete,
    }


def quick_job(sm, name, args, **extra):
    sm.create_transform_job(
        TransformJobName=name,
        ModelName="any-model",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": args["input"]}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": args["output"] + name + "/"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        **extra,
    )


def pagination(args):
    sm = boto3.client("sagemaker")
    names = [args["prefix"] + "-" + str(i) for i in range(3)]
    for name in names:
        quick_job(sm, name, args)
        time.sleep(0.05)  # distinct creation times
    for name in names:
        wait(sm, name)
    first = sm.list_transform_jobs(MaxResults=1, NameContains=args["prefix"])
    pages = sm.get_paginator("list_transform_jobs").paginate(
        NameContains=args["prefix"], PaginationConfig={"PageSize": 1}
    )
    paged = [[s["TransformJobName"] for s in page["TransformJobSummaries"]] for page in pages]
    by_name = sm.list_transform_jobs(NameContains=args["prefix"], SortBy="Name", SortOrder="Ascending")
    completed = sm.list_transform_jobs(NameContains=args["prefix"], StatusEquals="Completed")
    failed = sm.list_transform_jobs(NameContains=args["prefix"], StatusEquals="Failed")
    # boto3 sends timestamps as whole epoch seconds, so the time filters are checked a minute apart.
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)
    earlier = later - datetime.timedelta(minutes=2)

    def names(**filters):
        listed = sm.list_transform_jobs(NameContains=args["prefix"], **filters)
        return [s["TransformJobName"] for s in listed["TransformJobSummaries"]]

    times = {
        "createdAfterLater": names(CreationTimeAfter=later),
        "createdAfterEarlier": names(CreationTimeAfter=earlier),
        "createdBeforeEarlier": names(CreationTimeBefore=earlier),
        "modifiedBeforeLater": names(LastModifiedTimeBefore=later),
        "modifiedAfterLater": names(LastModifiedTimeAfter=later),
    }
    return {
        "first": clean(first),
        "paged": paged,
        "byName": [s["TransformJobName"] for s in by_name["TransformJobSummaries"]],
        "completed": [s["TransformJobName"] for s in completed["TransformJobSummaries"]],
        "failed": [s["TransformJobName"] for s in failed["TransformJobSummaries"]],
        "times": times,
    }


def start_slow(sm, args):
    """A job of 10 records at 2 s each, returned once a worker runs it (TransformStartTime set)."""
    quick_job(
        sm,
        args["name"],
        args,
        BatchStrategy="SingleRecord",
        Environment={"MODEL_LATENCY_MS": "2000"},
    )
    for _ in range(150):
        d = sm.describe_transform_job(TransformJobName=args["name"])
        if "TransformStartTime" in d:
            return d["TransformJobStatus"]
        time.sleep(0.2)
    raise RuntimeError("the job did not start in 30 s")


def started(args):
    return {"status": start_slow(boto3.client("sagemaker"), args)}


def stop(args):
    sm = boto3.client("sagemaker")
    start_slow(sm, args)
    sm.stop_transform_job(TransformJobName=args["name"])
    right_after = sm.describe_transform_job(TransformJobName=args["name"])["TransformJobStatus"]
    waited = wait(sm, args["name"])
    described = sm.describe_transform_job(TransformJobName=args["name"])
    stop_again = clean(sm.stop_transform_job(TransformJobName=args["name"]))
    return {"rightAfter": right_after, "waited": waited, "described": clean(described), "stopAgain": stop_again}


def errors(args):
    sm = boto3.client("sagemaker")
    quick_job(sm, args["name"], args)
    out = {
        "duplicate": error_of(lambda: quick_job(sm, args["name"], args)),
        "describeMissing": error_of(lambda: sm.describe_transform_job(TransformJobName="no-such-job")),
        "stopMissing": error_of(lambda: sm.stop_transform_job(TransformJobName="no-such-job")),
        "describeModelMissing": error_of(lambda: sm.describe_model(ModelName="no-such-model")),
        "deleteModelMissing": error_of(lambda: sm.delete_model(ModelName="no-such-model")),
        "invalid": error_of(
            lambda: sm.create_transform_job(
                TransformJobName=args["name"] + "-invalid",
                ModelName="any-model",
                MaxPayloadInMB=101,
                TransformInput={
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "not-a-location"}},
                    "SplitType": "Lines",
                },
                TransformOutput={"S3OutputPath": args["output"]},
                TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
            )
        ),
        "invalidNameStaysFree": error_of(lambda: sm.describe_transform_job(TransformJobName=args["name"] + "-invalid")),
        "modelDuplicate": None,
        "waiterOnMissing": wait(sm, "no-such-job"),
    }
    sm.create_model(ModelName=args["name"] + "-m", PrimaryContainer={"Image": "my-image"})
    out["modelDuplicate"] = error_of(
        lambda: sm.create_model(ModelName=args["name"] + "-m", PrimaryContainer={"Image": "my-image"})
    )
    out["modelPipeline"] = error_of(
        lambda: sm.create_model(
            ModelName=args["name"] + "-p", Containers=[{"Image": "a"}, {"Image": "b"}]
        )
    )
    wait(sm, args["name"])
    return out


def missing_model(args):
    sm = boto3.client("sagemaker")
    return {
        "createJob": error_of(lambda: quick_job(sm, args["name"], args)),
        "createdModelImage": error_of(
            lambda: (
                sm.create_model(ModelName="ecr-model", PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/m:1"}),
                sm.create_transform_job(
                    TransformJobName=args["name"] + "-ecr",
                    ModelName="ecr-model",
                    TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": args["input"]}}},
                    TransformOutput={"S3OutputPath": args["output"]},
                    TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
                ),
            )
        ),
    }


def deployed(args):
    sm = boto3.client("sagemaker")
    request = args["request"]
    created = sm.create_transform_job(**request)
    waited = wait(sm, request["TransformJobName"])
    described = sm.describe_transform_job(TransformJobName=request["TransformJobName"])
    listed = sm.list_transform_jobs(MaxResults=1)
    duplicate = error_of(lambda: sm.create_transform_job(**request))
    return {
        "duplicate": duplicate,
        "created": clean(created),
        "waited": waited,
        "described": clean(described),
        "listed": clean(listed),
        "createModel": error_of(lambda: sm.create_model(ModelName="m", PrimaryContainer={"Image": "x"})),
    }


def deployed_model(args):
    """CreateModel on a deployed stack, then two jobs with the created model, then DeleteModel."""
    sm = boto3.client("sagemaker")
    name = args["model"]
    container = {"Image": args["image"], "Environment": args["environment"]}
    created = sm.create_model(ModelName=name, PrimaryContainer=container)
    duplicate = error_of(lambda: sm.create_model(ModelName=name, PrimaryContainer=container))
    refused_image = error_of(
        lambda: sm.create_model(ModelName=name + "-other", PrimaryContainer={"Image": args["refusedImage"]})
    )
    described_model = sm.describe_model(ModelName=name)
    listed_models = sm.list_models()
    jobs = []
    for request in args["requests"]:
        sm.create_transform_job(**request)
        waited = wait(sm, request["TransformJobName"])
        described = sm.describe_transform_job(TransformJobName=request["TransformJobName"])
        jobs.append({"waited": waited, "status": described["TransformJobStatus"], "reason": described.get("FailureReason")})
    deleted = sm.delete_model(ModelName=name)
    return {
        "created": clean(created),
        "duplicate": duplicate,
        "refusedImage": refused_image,
        "describedModel": clean(described_model),
        "listedModels": [m["ModelName"] for m in listed_models["Models"]],
        "jobs": jobs,
        "deleted": clean(deleted),
        "describeDeleted": error_of(lambda: sm.describe_model(ModelName=name)),
    }


if __name__ == "__main__":
    scenario = {
        "seed": seed,
        "model-then-job": model_then_job,
        "pagination": pagination,
        "stop": stop,
        "started": started,
        "errors": errors,
        "missing-model": missing_model,
        "deployed": deployed,
        "deployed-model": deployed_model,
    }[sys.argv[1]]
    print(json.dumps(scenario(json.loads(sys.argv[2])), default=encode))
