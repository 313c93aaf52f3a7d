"""Imports every module that defines tables, so ``Base.metadata`` is complete.

It also imports the engine's record listeners, so continuous enrolment is wired wherever
the models are loaded.
"""

from nurture.accounts import models as accounts_models
from nurture.campaigns import models as campaigns_models
from nurture.channels.email import models as email_models
from nurture.channels.outbox import models as outbox_models
from nurture.channels.sms import models as sms_models
from nurture.channels.webhook import models as webhook_models
from nurture.engine import enrol as engine_enrol  # registers the record-change listeners
from nurture.engine import models as engine_models
from nurture.records import models as records_models

__all__ = ["accounts_models", "campaigns_models", "email_models", "outbox_models", "sms_models", "webhook_models", "engine_enrol", "engine_models", "records_models"]
