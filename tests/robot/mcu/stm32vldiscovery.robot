*** Settings ***
Documentation     hello_world on stm32vldiscovery under emulation.
Resource          hello_world.resource
Suite Setup       Build Hello World For stm32vldiscovery
Test Teardown     Reset Emulation


*** Test Cases ***
Boots And Prints The Ready Banner
    Banner Names stm32vldiscovery

Seven Inferences Equal TFLM
    Seven Inferences On stm32vldiscovery Equal TFLM
