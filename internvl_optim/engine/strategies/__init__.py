"""MMEngine strategies made to resume safely, and the FSDP wrap policy
configs can name."""
from .fsdp_wrap_policy import wrap_module_classes
from .resumable_fsdp_strategy import ResumableFSDPStrategy
from .safe_resume_deepspeed_strategy import SafeResumeDeepSpeedStrategy

__all__ = ['ResumableFSDPStrategy', 'SafeResumeDeepSpeedStrategy',
           'wrap_module_classes']
