"""What pages the platform team: dead letters piling up or ageing, function 5xx, reconcile failures, failed runs.

Reconcile failures and failed runs are counted by log-based metrics over the handlers' JSON log lines; the
messages matched here are the ones handlers/ writes (a test keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.logging_metric import LoggingMetric, LoggingMetricMetricDescriptor
from cdktf_cdktf_provider_google.monitoring_alert_policy import (
    MonitoringAlertPolicy,
    MonitoringAlertPolicyAlertStrategy,
    MonitoringAlertPolicyConditions,
    MonitoringAlertPolicyConditionsConditionThreshold,
    MonitoringAlertPolicyConditionsConditionThresholdAggregations,
    MonitoringAlertPolicyDocumentation,
)
from cdktf_cdktf_provider_google.monitoring_notification_channel import MonitoringNotificationChannel
from constructs import Construct

from cdk.config import EnvironmentConfig

# Log lines the handlers write (handlers/main.py, the reconciler, the run-finishing log line).
RECONCILE_FAILURE_MESSAGES = ("reconcile failed", "reconcile step failed; next time")
RUN_FINISHED_MESSAGE = "run finished"
FAILED_RUN_STATUS = "FAILED"

# A dead letter is Baton giving up on an event: one is worth a look.
DEAD_LETTERS_WAITING = 0
# Dead letters are dropped after 7 days (the hold's retention): page well before, with days left to replay.
OLDEST_DEAD_LETTER_SECONDS = 2 * 24 * 3600
# Some 5xx are expected (a completion that fails is redelivered by Pub/Sub); a sustained rate is not.
FUNCTION_5XX_PER_5_MINUTES = 10
ALIGNMENT = "300s"


def _quoted_any(values: Sequence[str]) -> str:
    return "(" + " OR ".join(f'"{value}"' for value in values) + ")"


class Alerts(Construct):
    def __init__(
        self, scope: Construct, id_: str, *, config: EnvironmentConfig, depends_on: Sequence[ITerraformDependable]
    ) -> None:
        super().__init__(scope, id_)
        self.config = config
        self.depends_on = list(depends_on)
        self.channels: list[str] = []
        if config.alert_email:
            channel = MonitoringNotificationChannel(
                self,
                "email",
                project=config.project,
                display_name=f"Baton {config.name} alerts",
                type="email",
                labels={"email_address": config.alert_email},
                depends_on=self.depends_on,
            )
            self.channels.append(channel.id)

        functions = f"resource.labels.service_name={_quoted_any(config.functions)}"
        reconcile_failures = self._log_metric(
            "reconcile_failures_metric",
            name=f"baton-{config.name}-reconcile-failures",
            description="Reconcile passes or steps that failed: lost events stay unhealed until one succeeds",
            log_filter=(
                f'resource.type="cloud_run_revision" AND resource.labels.service_name="{config.reconcile_function}" '
                f"AND jsonPayload.message={_quoted_any(RECONCILE_FAILURE_MESSAGES)}"
            ),
        )
        runs_failed = self._log_metric(
            "runs_failed_metric",
            name=f"baton-{config.name}-runs-failed",
            description="Runs that finished FAILED",
            log_filter=(
                f'resource.type="cloud_run_revision" AND {functions} '
                f'AND jsonPayload.message="{RUN_FINISHED_MESSAGE}" AND jsonPayload.status="{FAILED_RUN_STATUS}"'
            ),
        )
        hold = f'resource.type="pubsub_subscription" AND resource.labels.subscription_id="{config.dead_letter_subscription}"'
        self.policies = {
            "dead_letters_waiting": self._policy(
                "dead_letters_waiting",
                title="dead letters waiting",
                metric_filter=f'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages" AND {hold}',
                aligner="ALIGN_MAX",
                threshold=DEAD_LETTERS_WAITING,
                advice="Completion events Baton gave up on. `baton deadletters list` shows each reason; replay or drop them.",
            ),
            "oldest_dead_letter": self._policy(
                "oldest_dead_letter",
                title="oldest dead letter ageing",
                metric_filter=f'metric.type="pubsub.googleapis.com/subscription/oldest_unacked_message_age" AND {hold}',
                aligner="ALIGN_MAX",
                threshold=OLDEST_DEAD_LETTER_SECONDS,
                advice="A dead letter is older than 2 days; the hold drops it after 7. Replay or drop it now.",
            ),
            "function_5xx": self._policy(
                "function_5xx",
                title="function 5xx",
                metric_filter=(
                    'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision" '
                    f'AND {functions} AND metric.labels.response_code_class="5xx"'
                ),
                aligner="ALIGN_DELTA",
                threshold=FUNCTION_5XX_PER_5_MINUTES,
                group_by=["resource.label.service_name"],
                advice="A function answers 5xx: read its logs (severity>=ERROR) for the failing dependency.",
            ),
            "reconcile_failures": self._policy(
                "reconcile_failures",
                title="reconcile failures",
                metric_filter=f'metric.type="logging.googleapis.com/user/{reconcile_failures.name}" '
                'AND resource.type="cloud_run_revision"',
                aligner="ALIGN_DELTA",
                threshold=0,
                after=[reconcile_failures],
                advice="The reconciler failed: lost completion events are not being healed. Read the reconcile logs.",
            ),
            "runs_failed": self._policy(
                "runs_failed",
                title="runs failed",
                metric_filter=f'metric.type="logging.googleapis.com/user/{runs_failed.name}" '
                'AND resource.type="cloud_run_revision"',
                aligner="ALIGN_DELTA",
                threshold=0,
                after=[runs_failed],
                advice="A run finished FAILED: `baton runs --status FAILED`, then `baton status RUN`.",
            ),
        }

    def _log_metric(self, id_: str, *, name: str, description: str, log_filter: str) -> LoggingMetric:
        return LoggingMetric(
            self,
            id_,
            project=self.config.project,
            name=name,
            description=description,
            filter=log_filter,
            metric_descriptor=LoggingMetricMetricDescriptor(metric_kind="DELTA", value_type="INT64", unit="1"),
            depends_on=self.depends_on,
        )

    def _policy(
        self,
        id_: str,
        *,
        title: str,
        metric_filter: str,
        aligner: str,
        threshold: float,
        advice: str,
        group_by: Sequence[str] = (),
        after: Sequence[ITerraformDependable] = (),
    ) -> MonitoringAlertPolicy:
        config = self.config
        return MonitoringAlertPolicy(
            self,
            id_,
            project=config.project,
            display_name=f"Baton {config.name}: {title}",
            combiner="OR",
            severity="ERROR",
            notification_channels=self.channels,
            conditions=[
                MonitoringAlertPolicyConditions(
                    display_name=title,
                    condition_threshold=MonitoringAlertPolicyConditionsConditionThreshold(
                        filter=metric_filter,
                        comparison="COMPARISON_GT",
                        threshold_value=threshold,
                        duration="0s",
                        aggregations=[
                            MonitoringAlertPolicyConditionsConditionThresholdAggregations(
                                alignment_period=ALIGNMENT,
                                per_series_aligner=aligner,
                                cross_series_reducer="REDUCE_SUM" if group_by else None,
                                group_by_fields=list(group_by) or None,
                            )
                        ],
                    ),
                )
            ],
            documentation=MonitoringAlertPolicyDocumentation(content=advice, mime_type="text/markdown"),
            alert_strategy=MonitoringAlertPolicyAlertStrategy(auto_close="86400s"),
            user_labels=dict(config.labels),
            # A policy on a log-based metric is refused until the metric exists.
            depends_on=[*self.depends_on, *after],
        )
