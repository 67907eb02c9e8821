/* A Vulkan program linked with -lvulkan: instance, the llvmpipe (lavapipe) device, a device,
 * then real work on it: fill a buffer, copy it to another, read the copy back and check it.
 * Used by tests/tests/deploy_sandbox.rs, demo-sandbox.sh and the benchmark. */
#include <vulkan/vulkan.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define WORDS 4096
#define PATTERN 0xC0FFEE01u
/* Submissions of the recorded work timed after the first (repeat_ms is per submission). */
#define REPEATS 200

#define CHECK(call) do { VkResult r_ = (call); if (r_ != VK_SUCCESS) { \
    printf("%s failed: %d\n", #call, r_); return 1; } } while (0)

static int memory_type(VkPhysicalDevice pd, uint32_t bits, VkMemoryPropertyFlags want) {
    VkPhysicalDeviceMemoryProperties props;
    vkGetPhysicalDeviceMemoryProperties(pd, &props);
    for (uint32_t i = 0; i < props.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (props.memoryTypes[i].propertyFlags & want) == want)
            return (int)i;
    return -1;
}

static int make_buffer(VkDevice dev, VkPhysicalDevice pd, VkBuffer *buf, VkDeviceMemory *mem) {
    VkBufferCreateInfo bci = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.size = WORDS * 4;
    bci.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    CHECK(vkCreateBuffer(dev, &bci, NULL, buf));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(dev, *buf, &req);
    int type = memory_type(pd, req.memoryTypeBits,
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    if (type < 0) { printf("no host-visible memory\n"); return 1; }
    VkMemoryAllocateInfo mai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    mai.allocationSize = req.size;
    mai.memoryTypeIndex = (uint32_t)type;
    CHECK(vkAllocateMemory(dev, &mai, NULL, mem));
    CHECK(vkBindBufferMemory(dev, *buf, *mem, 0));
    return 0;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(void) {
    double t0 = now_ms();
    VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "capsule-deploy";
    app.apiVersion = VK_API_VERSION_1_0;
    VkInstanceCreateInfo ici = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    ici.pApplicationInfo = &app;
    VkInstance inst;
    CHECK(vkCreateInstance(&ici, NULL, &inst));

    uint32_t n = 8;
    VkPhysicalDevice pds[8];
    CHECK(vkEnumeratePhysicalDevices(inst, &n, pds));
    VkPhysicalDevice pd = VK_NULL_HANDLE;
    VkPhysicalDeviceProperties props;
    for (uint32_t i = 0; i < n; i++) {
        vkGetPhysicalDeviceProperties(pds[i], &props);
        if (strstr(props.deviceName, "llvmpipe")) { pd = pds[i]; break; }
    }
    if (pd == VK_NULL_HANDLE) { printf("no llvmpipe device among %u\n", n); return 1; }
    printf("device=%s\n", props.deviceName);

    uint32_t qn = 8;
    VkQueueFamilyProperties qfs[8];
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &qn, qfs);
    uint32_t family = UINT32_MAX;
    for (uint32_t i = 0; i < qn; i++)
        if (qfs[i].queueFlags & (VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT | VK_QUEUE_TRANSFER_BIT)) { family = i; break; }
    if (family == UINT32_MAX) { printf("no transfer queue\n"); return 1; }

    float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qci.queueFamilyIndex = family;
    qci.queueCount = 1;
    qci.pQueuePriorities = &priority;
    VkDeviceCreateInfo dci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    dci.queueCreateInfoCount = 1;
    dci.pQueueCreateInfos = &qci;
    VkDevice dev;
    CHECK(vkCreateDevice(pd, &dci, NULL, &dev));
    VkQueue queue;
    vkGetDeviceQueue(dev, family, 0, &queue);
    double t1 = now_ms();

    VkBuffer src, dst;
    VkDeviceMemory src_mem, dst_mem;
    if (make_buffer(dev, pd, &src, &src_mem) || make_buffer(dev, pd, &dst, &dst_mem)) return 1;

    VkCommandPoolCreateInfo pci = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pci.queueFamilyIndex = family;
    VkCommandPool pool;
    CHECK(vkCreateCommandPool(dev, &pci, NULL, &pool));
    VkCommandBufferAllocateInfo cai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    cai.commandPool = pool;
    cai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    cai.commandBufferCount = 1;
    VkCommandBuffer cmd;
    CHECK(vkAllocateCommandBuffers(dev, &cai, &cmd));
    VkCommandBufferBeginInfo cbi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    CHECK(vkBeginCommandBuffer(cmd, &cbi));
    vkCmdFillBuffer(cmd, src, 0, VK_WHOLE_SIZE, PATTERN);
    VkMemoryBarrier barrier = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         0, 1, &barrier, 0, NULL, 0, NULL);
    VkBufferCopy region = {0, 0, WORDS * 4};
    vkCmdCopyBuffer(cmd, src, dst, 1, &region);
    barrier.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT,
                         0, 1, &barrier, 0, NULL, 0, NULL);
    CHECK(vkEndCommandBuffer(cmd));
    VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cmd;
    CHECK(vkQueueSubmit(queue, 1, &si, VK_NULL_HANDLE));
    CHECK(vkQueueWaitIdle(queue));

    uint32_t *words;
    CHECK(vkMapMemory(dev, dst_mem, 0, WORDS * 4, 0, (void **)&words));
    uint32_t good = 0;
    for (uint32_t i = 0; i < WORDS; i++) good += words[i] == PATTERN;
    vkUnmapMemory(dev, dst_mem);
    double t2 = now_ms();
    /* The same work again, steady state: submit the recorded fill+copy and wait. */
    for (int r = 0; r < REPEATS; r++) {
        CHECK(vkQueueSubmit(queue, 1, &si, VK_NULL_HANDLE));
        CHECK(vkQueueWaitIdle(queue));
    }
    double t3 = now_ms();
    printf("copied=%u/%u\n", good, WORDS);
    printf("instance_device_ms=%.3f\nwork_ms=%.3f\nrepeat_ms=%.4f\n", t1 - t0, t2 - t1,
           (t3 - t2) / REPEATS);

    vkDestroyCommandPool(dev, pool, NULL);
    vkDestroyBuffer(dev, src, NULL);
    vkDestroyBuffer(dev, dst, NULL);
    vkFreeMemory(dev, src_mem, NULL);
    vkFreeMemory(dev, dst_mem, NULL);
    vkDestroyDevice(dev, NULL);
    vkDestroyInstance(inst, NULL);
    return good == WORDS ? 0 : 1;
}
