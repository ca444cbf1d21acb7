"""Policies over every resource the Pulumi program declares, for several stack configs."""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from contract.costfacts import GP3_BASELINE_IOPS, GP3_BASELINE_THROUGHPUT_MBPS
from contract.names import OUTPUT_KEYS, StackNames
from infra.config import StackConfig, StackSetupError, parse_config
from infra.policy.rules import COST_TYPES
from infra.stack import EXTRA_OUTPUT_KEYS
from tests.infra.configs import MINIMAL
from tests.infra.program import ACCOUNT, LATEST_AMI, ZONES, Program, run_program

Built = tuple[StackConfig, Program]


def names(config: StackConfig) -> StackNames:
    """The names the program gives ``config``'s resources in the mocks' account."""
    return config.names_in(ACCOUNT)


def statements(policy: str) -> list[dict[str, Any]]:
    return list(json.loads(policy)["Statement"])


def test_every_aws_resource_uses_the_explicit_provider(built: Built) -> None:
    config, program = built
    providers = program.of_type("pulumi:providers:aws")
    assert len(providers) == 1
    assert providers[0].inputs["region"] == config.region
    # Provider inputs reach the engine as JSON strings.
    default_tags = json.loads(providers[0].inputs["defaultTags"])
    assert default_tags["tags"] == names(config).cost_tags
    assert program.aws
    for resource in program.aws:
        assert "pulumi:providers:aws::aws::" in (resource.provider or ""), resource.name


def test_everything_that_costs_money_is_tagged(built: Built) -> None:
    config, program = built
    costly = [r for r in program.aws if r.type in COST_TYPES]
    assert len(costly) > 20
    for resource in costly:
        tags = resource.inputs.get("tags", {})
        assert {k: tags.get(k) for k in names(config).cost_tags} == names(config).cost_tags, (
            resource.name
        )


def test_launched_resources_carry_tags_themselves(built: Built) -> None:
    config, program = built
    template = program.one("aws:ec2/launchTemplate:LaunchTemplate")
    specs = {s["resourceType"]: s["tags"] for s in template.inputs["tagSpecifications"]}
    # No "spot-instances-request": EC2 refuses every on-demand launch of a template that tags
    # one ("You cannot specify tags for Spot instances requests if there are no Spot
    # instances requests being created"; aws/karpenter-provider-aws#5850,
    # github-aws-runners/terraform-aws-github-runner#4561), and onDemandBase > 0 launches some.
    assert set(specs) == {"instance", "volume", "network-interface"}
    for tags in specs.values():
        assert names(config).cost_tags.items() <= tags.items()
    group = program.one("aws:autoscaling/group:Group")
    propagated = {t["key"]: t["value"] for t in group.inputs["tags"] if t["propagateAtLaunch"]}
    assert names(config).cost_tags.items() <= propagated.items()


def test_launch_template_requires_imdsv2_and_free_gp3(built: Built) -> None:
    config, program = built
    template = program.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
        "instanceMetadataTags": "enabled",
    }
    (root,) = template["blockDeviceMappings"]
    assert root["ebs"]["volumeType"] == "gp3"
    assert root["ebs"]["iops"] == GP3_BASELINE_IOPS
    assert root["ebs"]["throughput"] == GP3_BASELINE_THROUGHPUT_MBPS
    assert root["ebs"]["encrypted"] == "true"
    assert root["ebs"]["volumeSize"] == config.fleet.root_volume_gib


def test_instances_get_a_profile_and_no_keys(built: Built) -> None:
    _, program = built
    template = program.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["iamInstanceProfile"]["arn"]
    user_data = base64.b64decode(template["userData"]).decode()
    env = base64.b64decode(user_data.split("content: ")[1].strip()).decode()
    assert f"SPOTCUBE_QUEUE_URL={program.outputs['job_queue_url']}\n" in env
    assert f"SPOTCUBE_PRODUCTS_BUCKET={program.outputs['products_bucket']}\n" in env
    assert not re.search(r"AKIA|ASIA|AWS_SECRET|AWS_ACCESS_KEY", user_data + env)
    assert not program.of_type("aws:iam/accessKey:AccessKey")
    assert not program.of_type("aws:iam/user:User")


def test_asg_is_spot_first_diversified_in_every_zone(built: Built) -> None:
    config, program = built
    group = program.one("aws:autoscaling/group:Group").inputs
    policy = group["mixedInstancesPolicy"]
    distribution = policy["instancesDistribution"]
    assert distribution["spotAllocationStrategy"] == "price-capacity-optimized"
    assert distribution["onDemandPercentageAboveBaseCapacity"] == 0
    assert distribution["onDemandBaseCapacity"] == config.fleet.on_demand_base
    types = [o["instanceType"] for o in policy["launchTemplate"]["overrides"]]
    assert types == list(config.fleet.instance_types)
    assert len(types) >= 3
    assert (group["minSize"], group["maxSize"]) == (0, config.fleet.max_size)
    assert "desiredCapacity" not in group
    assert len(group["vpcZoneIdentifiers"]) == len(ZONES)
    assert group["capacityRebalance"] is config.fleet.capacity_rebalance


def test_fleet_scales_from_the_queue_backlog(built: Built) -> None:
    config, program = built
    backlog = program.one("aws:autoscaling/policy:Policy", "backlog").inputs
    metrics = backlog["targetTrackingConfiguration"]["customizedMetricSpecification"]["metrics"]
    queues = {
        d["value"]
        for m in metrics
        if "metricStat" in m
        for d in m["metricStat"]["metric"]["dimensions"]
        if d["name"] == "QueueName"
    }
    assert queues == {names(config).job_queue}
    start = program.one("aws:autoscaling/policy:Policy", "start")
    alarm = program.one("aws:cloudwatch/metricAlarm:MetricAlarm", "fleet-start").inputs
    assert alarm["alarmActions"] == [start.outputs["arn"]]


def test_network_has_no_nat_and_no_inbound(built: Built) -> None:
    _, program = built
    assert not program.of_type("aws:ec2/natGateway:NatGateway")
    assert not program.of_type("aws:ec2/eip:Eip")
    assert len(program.of_type("aws:ec2/subnet:Subnet")) == len(ZONES)
    endpoint = program.one("aws:ec2/vpcEndpoint:VpcEndpoint").inputs
    assert endpoint["vpcEndpointType"] == "Gateway"
    assert endpoint["serviceName"].endswith(".s3")
    group = program.one("aws:ec2/securityGroup:SecurityGroup").inputs
    assert group.get("ingress", []) == []
    assert [(e["protocol"], e["fromPort"], e["toPort"]) for e in group["egress"]] == [
        ("tcp", 443, 443)
    ]


def test_buckets_are_private_encrypted_tls_only_and_retained(built: Built) -> None:
    config, program = built
    buckets = program.of_type("aws:s3/bucket:Bucket")
    expected = {names(config).products_bucket}
    if config.data.raw_bucket is None:
        expected.add(names(config).raw_bucket)
    assert {b.inputs["bucket"] for b in buckets} == expected
    for bucket in buckets:
        name = bucket.inputs["bucket"]
        assert bucket.inputs.get("forceDestroy") is False

        def on(type_: str, name: str = name) -> dict[str, Any]:
            (found,) = [r.inputs for r in program.of_type(type_) if r.inputs["bucket"] == name]
            return found

        block = on("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        assert all(
            block[k]
            for k in (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        )
        sse = on(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        )
        assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
        (deny,) = statements(on("aws:s3/bucketPolicy:BucketPolicy")["policy"])
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        rules = on("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["rules"]
        assert any(r.get("abortIncompleteMultipartUpload") for r in rules)


def test_existing_raw_bucket_is_only_read(programs: dict[str, Built]) -> None:
    _config, program = programs["existing-raw"]
    assert program.outputs["raw_bucket"] == "mwa-group-archive"
    assert program.outputs["raw_prefix"] == "phase1/"
    assert all(
        b.inputs["bucket"] != "mwa-group-archive" for b in program.aws if "bucket" in b.inputs
    )
    worker = program.one("aws:iam/rolePolicy:RolePolicy", "fleet-worker").inputs["policy"]
    on_raw = [s for s in statements(worker) if "mwa-group-archive" in json.dumps(s["Resource"])]
    assert {a for s in on_raw for a in s["Action"]} == {"s3:GetObject", "s3:ListBucket"}
    assert any("arn:aws:s3:::mwa-group-archive/phase1/*" in s["Resource"] for s in on_raw)


def test_worker_role_is_least_privilege(built: Built) -> None:
    config, program = built
    policy = statements(
        program.one("aws:iam/rolePolicy:RolePolicy", "fleet-worker").inputs["policy"]
    )
    allows = [s for s in policy if s["Effect"] == "Allow"]
    for statement in allows:
        assert "*" not in statement["Resource"]
        assert not any(a.endswith("*") for a in statement["Action"])
    # The one Deny: once the brake tagged the group, a worker between jobs cannot protect
    # itself again, nor hold its lifecycle hook past the grace (issue 20).
    (deny,) = [s for s in policy if s["Effect"] == "Deny"]
    assert set(deny["Action"]) == {
        "autoscaling:SetInstanceProtection",
        "autoscaling:RecordLifecycleActionHeartbeat",
    }
    assert deny["Condition"] == {"StringEquals": {"aws:ResourceTag/spotcube:brake": "on"}}
    writes = [s for s in policy if "s3:PutObject" in s["Action"]]
    assert [s["Resource"] for s in writes] == [
        [f"arn:aws:s3:::{names(config).products_bucket}/runs/*"]
    ]
    lifecycle = next(s for s in policy if "autoscaling:CompleteLifecycleAction" in s["Action"])
    assert lifecycle["Resource"][0].endswith(f"autoScalingGroupName/{names(config).asg}")
    assert "autoscaling:SetInstanceProtection" in lifecycle["Action"]


def test_dead_letter_queue_outlives_the_job_queue(built: Built) -> None:
    """A message keeps its original enqueue timestamp when it moves to the DLQ (SQS Developer
    Guide, "Using dead-letter queues"): the DLQ's retention must be longer, within SQS's
    maximum of 14 days (1,209,600 s)."""
    _, program = built
    jobs = program.one("aws:sqs/queue:Queue", "jobs").inputs["messageRetentionSeconds"]
    dlq = program.one("aws:sqs/queue:Queue", "dlq").inputs["messageRetentionSeconds"]
    assert jobs < dlq <= 1_209_600
    assert dlq - jobs >= 3 * 86400  # a job failing on its last day is readable for days


def test_budget_waits_for_the_topics_that_let_it_publish(built: Built) -> None:
    """AWS Budgets must be allowed to publish to a topic before a notification can name it;
    the budget depends on both topics' policies, so a first deploy cannot race."""
    _, program = built
    budget = program.one("aws:budgets/budget:Budget")
    assert set(program.depends_on[budget.name]) >= {
        "cost-brake-publishers",
        "alerts-publishers",
    }


def test_account_vcpu_alarm_leaves_room_for_honest_days(built: Built) -> None:
    """Rebalancing may run 10 % over maxSize (rounded up to an instance) and a bake adds a
    build instance; the default threshold covers both, and three consecutive minutes over it
    are needed, longer than a spot instance's 2-minute notice."""
    config, program = built
    alarm = program.one("aws:cloudwatch/metricAlarm:MetricAlarm", "account-vcpus").inputs
    vcpus = config.fleet.shape.vcpus
    max_size = config.fleet.max_size
    honest_peak = (max_size + math.ceil(max_size / 10)) * vcpus + 2  # one *.large bake
    assert alarm["threshold"] >= honest_peak
    assert (alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (3, 3)


def test_queue_is_encrypted_with_a_dead_letter_alarm(built: Built) -> None:
    config, program = built
    jobs = program.one("aws:sqs/queue:Queue", "jobs").inputs
    dlq = program.one("aws:sqs/queue:Queue", "dlq").inputs
    assert jobs["sqsManagedSseEnabled"]
    assert dlq["sqsManagedSseEnabled"]
    redrive = json.loads(jobs["redrivePolicy"])
    assert redrive["maxReceiveCount"] == config.queue.max_receive_count
    assert redrive["deadLetterTargetArn"].endswith(names(config).dead_letter_queue)
    alarm = program.one("aws:cloudwatch/metricAlarm:MetricAlarm", "dlq-depth").inputs
    assert alarm["dimensions"] == {"QueueName": names(config).dead_letter_queue}
    assert alarm["alarmActions"] == [program.outputs["alerts_topic_arn"]]


def test_budget_filters_on_owner_and_notifies(built: Built) -> None:
    config, program = built
    budget = program.one("aws:budgets/budget:Budget").inputs
    assert budget["costFilters"] == [
        {"name": "TagKeyValue", "values": [f"user:Owner${config.owner}"]}
    ]
    assert float(budget["limitAmount"]) == config.budget.monthly_usd
    seen = {(n["notificationType"], n["threshold"]) for n in budget["notifications"]}
    assert seen == {("ACTUAL", 50), ("ACTUAL", 80), ("ACTUAL", 100), ("FORECASTED", 100)}
    for note in budget["notifications"]:
        assert note["subscriberEmailAddresses"] == list(config.budget.emails)
        assert len(note["subscriberSnsTopicArns"]) == 1
    # Tag activation is not on `pulumi up`'s path: on a fresh account the key is unknown to
    # billing for up to a day ("empty result", hashicorp/terraform-provider-aws#29068), and a
    # member account of an Organization may not activate tags at all.
    assert not program.of_type("aws:costexplorer/costAllocationTag:CostAllocationTag")
    # AWS Budgets: one SNS and at most 10 email subscribers per notification
    # (Budgets API reference, NotificationWithSubscribers).
    assert all(len(n["subscriberEmailAddresses"]) <= 10 for n in budget["notifications"])


def test_brake_is_wired_to_the_budget_and_the_alarm(built: Built) -> None:
    config, program = built
    brake_topic = f"arn:aws:sns:{config.region}:123456789012:{names(config).prefix}-brake"
    budget = program.one("aws:budgets/budget:Budget").inputs
    at_100 = next(
        n
        for n in budget["notifications"]
        if (n["notificationType"], n["threshold"]) == ("ACTUAL", 100)
    )
    assert at_100["subscriberSnsTopicArns"] == [brake_topic]
    burn = program.one("aws:cloudwatch/metricAlarm:MetricAlarm", "burn-rate").inputs
    assert brake_topic in burn["alarmActions"]
    assert burn["dimensions"] == {"AutoScalingGroupName": names(config).asg}
    # The meter's month-to-date spend, one datapoint per meter run, against the whole budget.
    assert (burn["namespace"], burn["metricName"]) == ("spotcube", "FleetMonthToDateUsd")
    assert (burn["statistic"], burn["period"], burn["evaluationPeriods"]) == ("Maximum", 600, 1)
    assert burn["threshold"] == config.budget.monthly_usd
    assert burn["comparisonOperator"] == "GreaterThanThreshold"
    meter = program.one("aws:lambda/function:Function", "meter").inputs
    env = meter["environment"]["variables"]
    assert env["ASG_NAME"] == names(config).asg
    assert float(env["SPOT_BOUND_USD"]) == pytest.approx(config.budget.spot_bound_usd, abs=1e-6)
    assert int(env["ON_DEMAND_BASE"]) == config.fleet.on_demand_base
    rule = program.one("aws:cloudwatch/eventRule:EventRule", "meter").inputs
    assert rule["scheduleExpression"] == "rate(10 minutes)"
    function = program.one("aws:lambda/function:Function", "brake")
    assert function.inputs["handler"] == "brake.handler"
    assert function.inputs["environment"]["variables"]["ASG_NAME"] == names(config).asg
    subscription = program.one("aws:sns/topicSubscription:TopicSubscription", "cost-brake")
    assert subscription.inputs["topic"] == brake_topic
    assert subscription.inputs["protocol"] == "lambda"
    assert subscription.inputs["endpoint"] == function.outputs["arn"]
    permission = program.one("aws:lambda/permission:Permission", "brake").inputs
    assert (permission["principal"], permission["sourceArn"]) == ("sns.amazonaws.com", brake_topic)


def test_health_rule_in_us_east_1_invokes_quarantine(built: Built) -> None:
    _, program = built
    rule = program.one("aws:cloudwatch/eventRule:EventRule", "exposed-keys")
    assert rule.inputs["region"] == "us-east-1"
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["source"] == ["aws.health"]
    assert pattern["detail"]["eventTypeCode"] == ["AWS_RISK_CREDENTIALS_EXPOSED"]
    function = program.one("aws:lambda/function:Function", "quarantine")
    assert function.inputs["region"] == "us-east-1"
    target = program.one("aws:cloudwatch/eventTarget:EventTarget", "exposed-keys").inputs
    assert (target["region"], target["rule"], target["arn"]) == (
        "us-east-1",
        rule.outputs["name"],
        function.outputs["arn"],
    )
    permission = program.one("aws:lambda/permission:Permission", "quarantine").inputs
    assert permission["sourceArn"] == rule.outputs["arn"]
    assert permission["region"] == "us-east-1"


def test_launch_guard_denies_other_regions_types_and_untagged(built: Built) -> None:
    config, program = built
    policy = statements(program.one("aws:iam/policy:Policy", "launch-guard").inputs["policy"])
    assert all(s["Effect"] == "Deny" for s in policy)
    conditions = json.dumps([s.get("Condition") for s in policy])
    assert f'"aws:RequestedRegion": ["{config.region}"]' in conditions
    for instance_type in config.fleet.instance_types:
        assert instance_type in conditions
    assert "aws:RequestTag/Project" in conditions
    assert f'"aws:RequestTag/Owner": "{config.owner}"' in conditions  # the value is pinned
    alarm = program.one("aws:cloudwatch/metricAlarm:MetricAlarm", "account-vcpus").inputs
    (query,) = alarm["metricQueries"]
    # Every class: a Metrics Insights SUM over AWS/Usage's EC2 vCPU series with no Class filter
    # (the classes, Standard/OnDemand ... Trn/Spot, are more than the 10 metrics a metric-math
    # alarm may reference: CloudWatch User Guide, "Limits that apply to alarms based on metric
    # math expressions").
    sql = query["expression"]
    assert sql.startswith('SELECT SUM(ResourceCount) FROM SCHEMA("AWS/Usage"')
    assert "Service = 'EC2'" in sql
    assert "Resource = 'vCPU'" in sql
    assert "Class =" not in sql
    assert query["returnData"] is True
    assert query["period"] == 60
    metric_stats = [q for q in alarm["metricQueries"] if q.get("metric")]
    assert len(metric_stats) <= 10
    assert alarm["threshold"] == config.guards.account_vcpus


def test_outputs_are_what_the_cli_reads(built: Built) -> None:
    config, program = built
    assert set(program.outputs) == set(OUTPUT_KEYS) | set(EXTRA_OUTPUT_KEYS)
    assert program.outputs["asg_name"] == names(config).asg
    assert program.outputs["budget_name"] == names(config).budget
    assert program.outputs["products_bucket"] == names(config).products_bucket
    assert program.outputs["job_queue_url"].endswith(names(config).job_queue)
    assert program.outputs["dead_letter_queue_url"].endswith(names(config).dead_letter_queue)
    expected_ami = LATEST_AMI if config.ami == "latest" else config.ami
    assert program.outputs["ami_id"] == expected_ami


def test_latest_ami_is_looked_up_by_tag(programs: dict[str, Built]) -> None:
    _, program = programs["minimal"]
    lookups = [args for token, args in program.calls if token == "aws:ec2/getAmiIds:getAmiIds"]
    assert lookups
    assert lookups[0]["owners"] == ["self"]
    assert lookups[0]["sortAscending"] is False  # newest first
    assert {"name": "tag:Project", "values": ["spotcube"]} in lookups[0]["filters"]
    _, full = programs["full"]
    assert not [t for t, _ in full.calls if t.startswith("aws:ec2/getAmi")]


def test_latest_ami_is_the_configured_variants() -> None:
    """``ami: latest`` picks the newest AMI of the variant the stack names, never another's.

    EC2 DescribeImages filters ``tag:<key>`` on tag values (EC2 API Reference, DescribeImages,
    "Filter.N": "tag:<key> - The key/value combination of a tag assigned to the resource");
    the key must be the one Packer writes on the AMI (``packer/locals.pkr.hcl``'s tags, read
    from the template here, not from the Python constant).
    """
    template = (Path(__file__).resolve().parents[2] / "packer" / "locals.pkr.hcl").read_text()
    written = re.search(r'"(spotcube:variant)"\s*=\s*var\.variant', template)
    assert written, "packer/locals.pkr.hcl no longer tags the variant"
    for variant in ("default", "radio-tools"):
        config = parse_config({**MINIMAL, "variant": variant}, stack="dev")
        program = run_program(config)
        lookups = [a for t, a in program.calls if t == "aws:ec2/getAmiIds:getAmiIds"]
        assert {"name": f"tag:{written.group(1)}", "values": [variant]} in lookups[0]["filters"]
    with pytest.raises(StackSetupError, match="--image-config") as caught:
        run_program(parse_config({**MINIMAL, "variant": "radio-tools"}, stack="dev"), amis=())
    assert "spotcube:variant=radio-tools" in str(caught.value)


def test_no_ami_in_the_region_names_region_and_bake_command(programs: dict[str, Built]) -> None:
    """pulumi-aws's get_ami fails with a bare "Your query returned no results" (the provider's
    data source error); the program looks up the id list instead and says what to do."""
    config, _ = programs["minimal"]
    with pytest.raises(StackSetupError) as caught:
        run_program(config, amis=())
    message = str(caught.value)
    assert "us-east-1" in message
    assert "spotcube bake --region us-east-1" in message
    assert "\n" not in message


def test_bucket_names_are_unique_per_account_and_fit_s3(built: Built) -> None:
    """S3 general purpose bucket names are 3-63 characters and global across all accounts of
    the partition (S3 User Guide, "General purpose bucket naming rules"): the example's
    owner/stack pair would collide between accounts, the account id does not."""
    config, program = built
    for bucket in program.of_type("aws:s3/bucket:Bucket"):
        name = bucket.inputs["bucket"]
        assert ACCOUNT in name
        assert 3 <= len(name) <= 63
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", name)
    other = config.names_in("210987654321")
    assert other.products_bucket != names(config).products_bucket


def test_bucket_settings_are_written_one_after_another(built: Built) -> None:
    """Concurrent writes of a new bucket's settings fail with OperationAborted ("A conflicting
    conditional operation is currently in progress", hashicorp/terraform-provider-aws#36873,
    sevenwestmedia-labs/pulumi-components#46): each waits for the one before."""
    _, program = built
    for bucket in program.of_type("aws:s3/bucket:Bucket"):
        logical = bucket.name
        chain = [
            logical,
            f"{logical}-private",
            f"{logical}-owner",
            f"{logical}-encryption",
            f"{logical}-tls-only",
            f"{logical}-lifecycle",
        ]
        for before, after in itertools.pairwise(chain):
            assert program.depends_on[after] == (before,), (after, program.depends_on[after])


def test_checkpoint_grace_is_a_hook_resource_the_scaling_waits_for(built: Built) -> None:
    """initial_lifecycle_hooks "will only work when creating a new Auto Scaling Group"
    (pulumi-aws Group docs): a separate LifecycleHook follows checkpointGraceSeconds."""
    config, program = built
    group = program.one("aws:autoscaling/group:Group").inputs
    assert not group.get("initialLifecycleHooks")
    hook = program.one("aws:autoscaling/lifecycleHook:LifecycleHook").inputs
    assert hook["heartbeatTimeout"] == config.fleet.checkpoint_grace_seconds
    assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    for policy in program.of_type("aws:autoscaling/policy:Policy"):
        assert program.depends_on[policy.name] == ("fleet-checkpoint",)


def test_group_launches_a_pinned_template_version(built: Built) -> None:
    """With "$Latest", whoever may add a template version changes what the group launches,
    through Auto Scaling's service-linked role, which the launch guard does not restrict."""
    _, program = built
    group = program.one("aws:autoscaling/group:Group").inputs
    spec = group["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
    assert spec["version"] == "1"  # the template's latest version, as a number


# Every Auto Scaling write (botocore's model of the API) that a guarded key must not make,
# with why; the Service Authorization Reference, "Actions, resources, and condition keys for
# Amazon EC2 Auto Scaling" (docs.aws.amazon.com/service-authorization/latest/reference/
# list_amazonec2autoscaling.html) lists each as an action of the autoScalingGroup resource.
DENIED_ALWAYS = {
    "PutScheduledUpdateGroupAction": "MaxSize/DesiredCapacity at a time; a recurrence "
    "re-raises it after the one-shot brake (SAR lists autoscaling:MaxSize for it)",
    "BatchPutScheduledUpdateGroupAction": "the same, several at once",
    "StartInstanceRefresh": "DesiredConfiguration swaps the launch template and instance "
    "types, with no autoscaling:InstanceTypes key to condition on",
    "RollbackInstanceRefresh": "goes back to an earlier launch template",
    "PutScalingPolicy": "predictive scaling's IncreaseMaxCapacity raises MaxSize itself",
    "PutWarmPool": "a warm pool keeps running or stopped instances beside the group",
    "LaunchInstances": "launches instances into the group for the caller",
    "PutLifecycleHook": "a long hook keeps braked instances billing",
    "SuspendProcesses": "suspending Terminate makes desired=0 terminate nothing",
    "DisableMetricsCollection": "blinds the spend meter (GroupTotalInstances)",
    "DetachInstances": "a detached instance runs on outside the group and the meter",
    "EnterStandby": "standby instances bill but are not in GroupTotalInstances",
    "AttachInstances": "adds any instance to the group",
    "CreateAutoScalingGroup": "a second group, outside the meter",
    "CreateLaunchConfiguration": "another launch configuration",
}
DENIED_WHILE_BRAKED = {
    "UpdateAutoScalingGroup": "restores MaxSize (bounded by the guard's MaxSize otherwise)",
    "SetDesiredCapacity": "restores capacity",
    "ExecutePolicy": "runs a scaling policy",
    "SetInstanceProtection": "a protected instance survives desired=0",
    "ExitStandby": "returns an instance to service",
    "ResumeProcesses": "undoes a suspension",
    "RecordLifecycleActionHeartbeat": "holds a terminating instance past the grace",
}
HARMLESS = {
    "AttachLoadBalancerTargetGroups": "traffic, not capacity",
    "AttachLoadBalancers": "traffic, not capacity",
    "AttachTrafficSources": "traffic, not capacity",
    "DetachLoadBalancerTargetGroups": "traffic, not capacity",
    "DetachLoadBalancers": "traffic, not capacity",
    "DetachTrafficSources": "traffic, not capacity",
    "BatchDeleteScheduledAction": "removes scheduled capacity",
    "DeleteScheduledAction": "removes scheduled capacity",
    "CancelInstanceRefresh": "stops a refresh",
    "CompleteLifecycleAction": "lets a terminating instance go",
    "DeleteAutoScalingGroup": "removes capacity",
    "DeleteLaunchConfiguration": "removes a configuration",
    "DeleteLifecycleHook": "instances then end without the grace: less billing",
    "DeleteNotificationConfiguration": "notifications only",
    "DeletePolicy": "removes a scaling policy",
    "DeleteWarmPool": "removes instances",
    "EnableMetricsCollection": "more metrics",
    "PutAccountSetting": "account defaults for instance-refresh lifecycle policy display",
    "PutNotificationConfiguration": "notifications only",
    "SetInstanceHealth": "marking unhealthy replaces within the group's sizes",
    "TerminateInstanceInAutoScalingGroup": "ends an instance (it may decrement desired)",
    "CreateOrUpdateTags": "denied for the brake's tag key (DenyTouchingTheBrakeTag)",
    "DeleteTags": "denied for the brake's tag key (DenyTouchingTheBrakeTag)",
}


def test_every_auto_scaling_write_is_judged(built: Built) -> None:
    """A generator, not a list: every write operation botocore knows for Auto Scaling is either
    denied to guarded keys (always, or while braked) or named harmless with a reason. A new
    API (as LaunchInstances was) fails this test until someone decides."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("autoscaling")
    writes = {o for o in model.operation_names if not o.startswith(("Describe", "Get"))}
    judged = set(DENIED_ALWAYS) | set(DENIED_WHILE_BRAKED) | set(HARMLESS)
    assert writes - judged == set()
    _, program = built
    guard = program.one("aws:iam/policy:Policy", "launch-guard")
    by_sid = {s["Sid"]: s for s in statements(guard.inputs["policy"])}
    unconditional = {
        a for s in by_sid.values() if "Condition" not in s for a in s.get("Action", [])
    }
    for op in DENIED_ALWAYS:
        assert f"autoscaling:{op}" in unconditional, op
    braked = by_sid["DenyReleasingTheBrake"]
    assert braked["Condition"] == {"StringEquals": {"aws:ResourceTag/spotcube:brake": "on"}}
    assert {f"autoscaling:{op}" for op in DENIED_WHILE_BRAKED} <= set(braked["Action"])
    tag = by_sid["DenyTouchingTheBrakeTag"]
    assert tag["Condition"] == {"ForAnyValue:StringEquals": {"aws:TagKeys": ["spotcube:brake"]}}
    assert set(tag["Action"]) == {"autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"}


def test_launch_guard_closes_the_side_doors(built: Built) -> None:
    """Launch paths that never pass through the caller's RunInstances conditions: EC2 Fleet
    (maintain/request) and Spot Fleet launch through their service-linked roles
    (AWSServiceRoleForEC2Fleet / AWSServiceRoleForEC2SpotFleet, EC2 User Guide), starting a
    stopped instance or changing its type is not a launch, and a new template version or a
    bigger MaxSize makes the group (Auto Scaling's own role) launch for the thief. The action
    names and the autoscaling:MaxSize / autoscaling:InstanceTypes / iam:PolicyARN condition
    keys are checked against AWS's service authorization reference by parliament
    (tests/infra/test_iam_lint.py)."""
    config, program = built
    guard = program.one("aws:iam/policy:Policy", "launch-guard")
    by_sid = {s["Sid"]: s for s in statements(guard.inputs["policy"])}
    unconditional = {
        a for s in by_sid.values() if "Condition" not in s for a in s.get("Action", [])
    }
    for action in (
        "ec2:CreateFleet",
        "ec2:RequestSpotFleet",
        "ec2:RequestSpotInstances",
        "ec2:StartInstances",
        "ec2:ModifyInstanceAttribute",
        "ec2:CreateLaunchTemplateVersion",
        "ec2:ModifyLaunchTemplate",
        "iam:CreateUser",
        "iam:CreateRole",
    ):
        assert action in unconditional, action
    growth = by_sid["DenyGrowingTheGroup"]
    assert growth["Condition"] == {
        "NumericGreaterThan": {"autoscaling:MaxSize": str(config.fleet.max_size)}
    }
    # The guard protects itself: its own ARN, in this account, by name.
    own_arn = f"arn:aws:iam::{ACCOUNT}:policy/{names(config).prefix}-launch-guard"
    assert by_sid["DenyDetachingTheGuard"]["Condition"] == {
        "ArnEquals": {"iam:PolicyARN": [own_arn]}
    }
    assert by_sid["DenyChangingTheGuard"]["Resource"] == [own_arn]
    assert guard.inputs["name"] == f"{names(config).prefix}-launch-guard"
    # IAM limits a managed policy to 6,144 characters (IAM User Guide, IAM quotas).
    assert len("".join(guard.inputs["policy"].split())) <= 6144
