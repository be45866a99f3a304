// SPDX-License-Identifier: GPL-2.0
/*
 * ltoboot_probe: exports a symbol (MODVERSIONS: another module's CRC for it must match),
 * keeps objects in .data, .rodata and .bss (LTO builds must merge their split sections), and
 * with lookup=NAME registers a kprobe on NAME to show that a ThinLTO-promoted static function
 * (NAME.llvm.<hash> in kallsyms) can be found by its plain name. With warn=1 it WARNs, so
 * that a kernel warning raised after boot, while a check runs, is shown to be reported.
 */
#include <linux/kprobes.h>
#include <linux/module.h>

static int value = 42;			/* .data: a writable parameter cannot be folded */
module_param(value, int, 0644);
static char *lookup;
module_param(lookup, charp, 0);
static bool warn;
module_param(warn, bool, 0);
static int loads;			/* .bss */
static const char banner[] = "ltoboot_probe";	/* .rodata */

int ltoboot_probe_value(void)
{
	return value;
}
EXPORT_SYMBOL_GPL(ltoboot_probe_value);

static int __init ltoboot_probe_init(void)
{
	loads++;
	pr_info("%s: loaded (%d), value %d\n", banner, loads, ltoboot_probe_value());
	WARN(warn, "%s: a warning on purpose\n", banner);
	if (lookup) {
#ifdef CONFIG_KPROBES
		struct kprobe kp = { .symbol_name = lookup };
		int ret = register_kprobe(&kp);

		if (ret) {
			pr_err("%s: kprobe on %s failed: %d\n", banner, lookup, ret);
			return ret;
		}
		pr_info("%s: kprobe %s at %px\n", banner, lookup, kp.addr);
		unregister_kprobe(&kp);
#else
		return -EOPNOTSUPP;
#endif
	}
	return 0;
}
module_init(ltoboot_probe_init);

static void __exit ltoboot_probe_exit(void)
{
	pr_info("%s: unloaded\n", banner);
}
module_exit(ltoboot_probe_exit);

MODULE_DESCRIPTION("ltoboot probe: exports a symbol, holds data/rodata/bss, kprobe lookup");
MODULE_LICENSE("GPL");
