// SPDX-License-Identifier: GPL-2.0
/*
 * ltoboot_vdso: finds the vDSO through AT_SYSINFO_EHDR, lists the functions it exports, and
 * calls clock_gettime through it between two raw system calls, for CLOCK_MONOTONIC and
 * CLOCK_REALTIME: the vDSO's answer must lie between the two. No libc: a static program for
 * x86_64 or arm64, built by ltoboot with clang -nostdlib.
 *
 * Output, one fact a line:
 *   vdso 0x...              where the vDSO is mapped
 *   symbol NAME             a function the vDSO exports
 *   clock ID S1 V S3 ok|bad the syscall, vDSO and syscall times in ns (ok: S1 <= V <= S3)
 *   error TEXT              what went wrong (no vDSO, no clock_gettime, a call failed)
 */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

struct timespec64 { long tv_sec; long tv_nsec; };
typedef int (*vdso_clock_gettime)(int, struct timespec64 *);

#if defined(__x86_64__)
#define NR_WRITE 1
#define NR_EXIT_GROUP 231
#define NR_CLOCK_GETTIME 228
#define CLOCK_GETTIME_NAME "__vdso_clock_gettime"
__asm__(".globl _start\n_start:\n\txor %rbp, %rbp\n\tmov %rsp, %rdi\n"
	"\tand $-16, %rsp\n\tcall start_c\n\tud2\n");

static long sys3(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
#define NR_WRITE 64
#define NR_EXIT_GROUP 94
#define NR_CLOCK_GETTIME 113
#define CLOCK_GETTIME_NAME "__kernel_clock_gettime"
__asm__(".globl _start\n_start:\n\tmov x0, sp\n\tbl start_c\n\tbrk #0\n");

static long sys3(long nr, long a, long b, long c)
{
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;

	__asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
}
#else
#error "ltoboot_vdso: x86_64 or arm64 only"
#endif

#define AT_NULL 0
#define AT_SYSINFO_EHDR 33
#define PT_LOAD 1
#define PT_DYNAMIC 2
#define DT_NULL 0
#define DT_HASH 4
#define DT_STRTAB 5
#define DT_SYMTAB 6
#define DT_GNU_HASH 0x6ffffef5
#define STT_FUNC 2

struct ehdr { u8 ident[16]; u16 type, machine; u32 version; u64 entry, phoff, shoff;
	      u32 flags; u16 ehsize, phentsize, phnum, shentsize, shnum, shstrndx; };
struct phdr { u32 type, flags; u64 offset, vaddr, paddr, filesz, memsz, align; };
struct dyn { long tag; u64 val; };
struct sym { u32 name; u8 info, other; u16 shndx; u64 value, size; };

static char buf[4096];
static u64 used;

static void put(const char *s)
{
	while (*s && used < sizeof(buf) - 1)
		buf[used++] = *s++;
}

static void put_num(u64 n)
{
	char digits[24];
	int i = 0;

	do {
		digits[i++] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	while (i && used < sizeof(buf) - 1)
		buf[used++] = digits[--i];
}

static void put_hex(u64 n)
{
	int shift;

	put("0x");
	for (shift = 60; shift >= 0; shift -= 4)
		if (used < sizeof(buf) - 1)
			buf[used++] = "0123456789abcdef"[(n >> shift) & 15];
}

static __attribute__((noreturn)) void finish(int status)
{
	sys3(NR_WRITE, 1, (long)buf, (long)used);
	for (;;)
		sys3(NR_EXIT_GROUP, status, 0, 0);
}

static int same(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* The number of dynamic symbols: DT_HASH's nchain, else walk DT_GNU_HASH's chains. */
static u64 symbol_count(const u32 *hash, const u32 *gnu)
{
	u64 last = 0, i;
	const u32 *buckets, *chain;

	if (hash)
		return hash[1];
	if (!gnu)
		return 0;
	buckets = gnu + 4 + (u64)gnu[2] * 2;	/* after the 64-bit bloom words */
	for (i = 0; i < gnu[0]; i++)
		if (buckets[i] > last)
			last = buckets[i];
	if (last < gnu[1])
		return last;
	chain = buckets + gnu[0] - gnu[1];
	while (!(chain[last] & 1))
		last++;
	return last + 1;
}

static u64 nanoseconds(const struct timespec64 *t)
{
	return (u64)t->tv_sec * 1000000000UL + (u64)t->tv_nsec;
}

static int compare(vdso_clock_gettime vdso, int id, const char *name)
{
	struct timespec64 s1, v, s3;
	long r1, r2, r3;

	r1 = sys3(NR_CLOCK_GETTIME, id, (long)&s1, 0);
	r2 = vdso(id, &v);
	r3 = sys3(NR_CLOCK_GETTIME, id, (long)&s3, 0);
	if (r1 || r2 || r3) {
		put("error clock_gettime(");
		put(name);
		put(") failed\n");
		return 1;
	}
	put("clock ");
	put(name);
	put(" ");
	put_num(nanoseconds(&s1));
	put(" ");
	put_num(nanoseconds(&v));
	put(" ");
	put_num(nanoseconds(&s3));
	if (nanoseconds(&s1) <= nanoseconds(&v) && nanoseconds(&v) <= nanoseconds(&s3)) {
		put(" ok\n");
		return 0;
	}
	put(" bad\n");
	return 1;
}

__attribute__((used)) void start_c(long *sp)
{
	long argc = sp[0];
	long *p = sp + 1 + argc + 1;	/* past argv and its NULL */
	u64 base = 0, bias = 0, count, i;
	const struct ehdr *eh;
	const struct phdr *ph;
	const struct dyn *dyn = 0;
	const struct sym *syms = 0;
	const char *strs = 0;
	const u32 *hash = 0, *gnu = 0;
	vdso_clock_gettime gettime = 0;
	int bad;

	while (*p)
		p++;			/* past envp */
	for (p++; p[0] != AT_NULL; p += 2)
		if (p[0] == AT_SYSINFO_EHDR)
			base = (u64)p[1];
	if (!base) {
		put("error no AT_SYSINFO_EHDR in the auxiliary vector\n");
		finish(1);
	}
	put("vdso ");
	put_hex(base);
	put("\n");
	eh = (const struct ehdr *)base;
	ph = (const struct phdr *)(base + eh->phoff);
	for (i = 0; i < eh->phnum; i++)
		if (ph[i].type == PT_LOAD) {
			bias = base + ph[i].offset - ph[i].vaddr;
			break;
		}
	for (i = 0; i < eh->phnum; i++)
		if (ph[i].type == PT_DYNAMIC)
			dyn = (const struct dyn *)(bias + ph[i].vaddr);
	for (; dyn && dyn->tag != DT_NULL; dyn++) {
		if (dyn->tag == DT_SYMTAB)
			syms = (const struct sym *)(bias + dyn->val);
		else if (dyn->tag == DT_STRTAB)
			strs = (const char *)(bias + dyn->val);
		else if (dyn->tag == DT_HASH)
			hash = (const u32 *)(bias + dyn->val);
		else if (dyn->tag == DT_GNU_HASH)
			gnu = (const u32 *)(bias + dyn->val);
	}
	count = symbol_count(hash, gnu);
	if (!syms || !strs || !count) {
		put("error the vDSO has no dynamic symbol table\n");
		finish(1);
	}
	for (i = 0; i < count; i++) {
		if ((syms[i].info & 15) != STT_FUNC || !syms[i].shndx)
			continue;
		put("symbol ");
		put(strs + syms[i].name);
		put("\n");
		if (same(strs + syms[i].name, CLOCK_GETTIME_NAME))
			gettime = (vdso_clock_gettime)(bias + syms[i].value);
	}
	if (!gettime) {
		put("error the vDSO does not export " CLOCK_GETTIME_NAME "\n");
		finish(1);
	}
	bad = compare(gettime, 1, "CLOCK_MONOTONIC");
	bad |= compare(gettime, 0, "CLOCK_REALTIME");
	finish(bad);
}
