"""Checks run by ``tools/train.py`` / ``tools/test.py`` before any work, so a
misconfigured run fails in a second with a message that says what to change.
One module per idea: :mod:`.our_import`, :mod:`.optimizer` (``optim_wrapper``
and ``train_cfg``), :mod:`.schedules`, :mod:`.files` (data roots, weight
files, the backbone's dtype under FSDP)."""
import sys

from .files import (check_backbone_dtype_fits_strategy, check_data_roots,
                    check_weight_files, missing_weight_files, weight_paths)
from .optimizer import (check_hybrid_strategy, check_optim_wrapper,
                        check_randomness, check_train_cfg)
from .our_import import IMPORT_LINE, OUR_MODELS, check_our_import
from .schedules import (check_deepspeed_scheduler, check_milestones,
                        check_one_cycle_keeps_ratios,
                        check_param_schedulers, check_phases_fit_the_loop,
                        check_schedulers_keep_ratios, deepspeed_config)

#: what the checks before any work raise; a tool turns them into one line
#: on stderr and exit code 1 (:func:`stop`)
CHECK_ERRORS = (ValueError, TypeError, FileNotFoundError, RuntimeError)


#: a message line longer than this is cut (a crafted key or value can make
#: one of hundreds of thousands of characters)
MAX_MESSAGE = 2000


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` on one line, cut in the middle to about ``limit``
    characters, saying how many were left out.

    >>> one_line('x' * 200, 60)
    'xxxxxxxxxxxxxxxxxxxx ... [160 characters cut] ... xxxxxxxxxxxxxxxxxxxx'
    """
    text = ' '.join(message.splitlines())
    if len(text) <= limit:
        return text
    keep = max((limit - 20) // 2, 10)
    return (f'{text[:keep]} ... [{len(text) - 2 * keep} characters cut] ... '
            f'{text[-keep:]}')


def stop(tool: str, config: str, err: Exception) -> None:
    """End a tool with one line, ``TOOL CONFIG: Type: message``, and exit
    code 1 (no traceback: the message says what to change); a message
    longer than :data:`MAX_MESSAGE` characters is cut to it."""
    print(one_line(f'{tool} {config}: {type(err).__name__}: {err}'),
          file=sys.stderr)
    sys.exit(1)


__all__ = ['CHECK_ERRORS', 'IMPORT_LINE', 'OUR_MODELS',
           'check_backbone_dtype_fits_strategy', 'check_data_roots',
           'check_deepspeed_scheduler', 'check_hybrid_strategy',
           'check_milestones', 'check_one_cycle_keeps_ratios',
           'check_optim_wrapper', 'check_our_import', 'check_param_schedulers',
           'check_phases_fit_the_loop', 'check_randomness',
           'check_schedulers_keep_ratios', 'check_train_cfg',
           'check_weight_files', 'deepspeed_config', 'missing_weight_files',
           'one_line', 'stop', 'weight_paths']
