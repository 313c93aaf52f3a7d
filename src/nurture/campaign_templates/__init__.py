"""Campaign templates (SPEC §11): the six cards shown while no campaign exists.

Each template is data (:mod:`.catalog`, shaped by :mod:`.spec`, email copy in :mod:`.emails`);
:func:`create_from_template` builds any of them in ``draft`` through the shared services.
"""

from nurture.campaign_templates.catalog import TEMPLATES
from nurture.campaign_templates.service import (
    create_from_template,
    get_template,
    list_templates,
    template_key,
)
from nurture.campaign_templates.spec import (
    DEFAULT_WEBSITE,
    ActionSpec,
    ActivitySpec,
    CampaignTemplate,
    EmailSpec,
)

__all__ = [
    "DEFAULT_WEBSITE",
    "TEMPLATES",
    "ActionSpec",
    "ActivitySpec",
    "CampaignTemplate",
    "EmailSpec",
    "create_from_template",
    "get_template",
    "list_templates",
    "template_key",
]
