# expect: rejected
# why: hands the work to torch's F.layer_norm and F.batch_norm, which the exercise forbids
import torch.nn.functional as F


def layer_norm(x, weight, bias, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def batch_norm(x, running_mean, running_var, weight, bias, training, momentum=0.1, eps=1e-5):
    mean, var = running_mean.clone(), running_var.clone()
    y = F.batch_norm(x, mean, var, weight, bias, training=training, momentum=momentum, eps=eps)
    return y, mean, var
