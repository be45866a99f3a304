// SPDX-License-Identifier: GPL-2.0
/* ltoboot_user: uses the symbol ltoboot_probe exports, so its __versions has that CRC. */
#include <linux/module.h>

int ltoboot_probe_value(void);

static int __init ltoboot_user_init(void)
{
	pr_info("ltoboot_user: ltoboot_probe_value() = %d\n", ltoboot_probe_value());
	return 0;
}
module_init(ltoboot_user_init);

static void __exit ltoboot_user_exit(void)
{
}
module_exit(ltoboot_user_exit);

MODULE_DESCRIPTION("ltoboot user: depends on ltoboot_probe's exported symbol");
MODULE_LICENSE("GPL");
